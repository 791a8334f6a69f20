"""End-to-end jobs behind the command line: open inputs, stream frames through
:mod:`dedkit.frames`, write outputs atomically, and return a report dataclass.

Each job is an ordinary Python function, so everything the ``dedkit`` command does can be
done from Python with the same options and the same report.
"""
