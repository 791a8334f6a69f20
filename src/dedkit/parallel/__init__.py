"""Scale-out on Dask: long runs split into chunks of frames, run on a LocalCluster by
default or on a scheduler given by address, with failed workers retried."""
