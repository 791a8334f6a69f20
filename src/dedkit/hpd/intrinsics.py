"""LLVM intrinsics and borrowed array views for the fast cluster-finder kernels.

Each function here is a numba ``@intrinsic``: it emits one LLVM instruction or builds
one array view directly, where numba's own code would be slower or round differently.
They are used by :mod:`dedkit.hpd.finder_fast` and callable from numba-compiled code
only (not from Python).

- Arithmetic: :func:`fma` (one rounding, the exact division by the window),
  :func:`sub_saturated` (int16 differences that cannot wrap around), :func:`float_bits`
  (a float64's bits, for rounding to a whole number with one fma),
  :func:`trailing_zeros` (the first doubtful pixel of eight dark flags).
- Threads: :func:`atomic_load` and :func:`atomic_store` (the counters the row bands
  wait on, acquire/release ordered), :data:`sched_yield` (give the core away while
  waiting long).
- Borrowed views (:func:`borrowed_row`, :func:`borrowed_part`, :func:`borrowed`,
  :func:`flag_words`): views that hold no reference to the array's memory. A plain
  ``array[i]``, or an array passed to a function, costs atomic operations on the
  array's reference count, and the threads of a banded run would share them; the
  caller's own reference keeps the memory alive, so the views need none.
"""

from __future__ import annotations

import llvmlite.ir as llvm_ir
from numba.core import cgutils
from numba.core import types as numba_types
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

__all__ = [
    "fma",
    "sub_saturated",
    "float_bits",
    "trailing_zeros",
    "atomic_load",
    "atomic_store",
    "sched_yield",
    "borrowed_row",
    "borrowed_part",
    "borrowed",
    "flag_words",
]


# -- arithmetic ------------------------------------------------------------------------------


@intrinsic
def fma(typingctx, a, b, c):
    """``llvm.fma.f64``: a * b + c (float64) rounded once, for exact divisions."""
    # LLVM's fma: vfmadd, or an exact software fallback
    signature = numba_types.float64(numba_types.float64, numba_types.float64, numba_types.float64)

    def codegen(context, builder, sig, args):
        double = llvm_ir.DoubleType()
        function_type = llvm_ir.FunctionType(double, [double, double, double])
        fma = builder.module.declare_intrinsic("llvm.fma", [double], function_type)
        return builder.call(fma, args)

    return signature, codegen


@intrinsic
def sub_saturated(typingctx, a, b):
    """``llvm.ssub.sat.i16``: a - b (int16) saturated to [-32768, 32767], never wrapping."""
    # one vpsubsw for sixteen pixels once the loop is vectorised
    signature = numba_types.int16(numba_types.int16, numba_types.int16)

    def codegen(context, builder, sig, args):
        short = llvm_ir.IntType(16)
        function_type = llvm_ir.FunctionType(short, [short, short])
        sub = builder.module.declare_intrinsic("llvm.ssub.sat", [short], function_type)
        return builder.call(sub, args)

    return signature, codegen


@intrinsic
def float_bits(typingctx, x):
    """``bitcast double to i64``: the bits of a float64 as an int64 (no conversion)."""
    signature = numba_types.int64(numba_types.float64)

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], llvm_ir.IntType(64))

    return signature, codegen


@intrinsic
def trailing_zeros(typingctx, word):
    """``llvm.cttz.i64``: zero bits below the lowest set bit of a non-zero uint64 (tzcnt)."""
    signature = numba_types.int64(numba_types.uint64)

    def codegen(context, builder, sig, args):
        word_type = llvm_ir.IntType(64)
        function_type = llvm_ir.FunctionType(word_type, [word_type, llvm_ir.IntType(1)])
        cttz = builder.module.declare_intrinsic("llvm.cttz", [word_type], function_type)
        # zero is undefined (poison): the callers never pass it, and tzcnt needs no test
        return builder.call(cttz, [args[0], llvm_ir.Constant(llvm_ir.IntType(1), 1)])

    return signature, codegen


# -- threads ---------------------------------------------------------------------------------


@intrinsic
def atomic_load(typingctx, array, index):
    """``load atomic acquire``: array[index] (int64), seeing the writes made before its store."""
    signature = numba_types.int64(array, index)

    def codegen(context, builder, sig, args):
        array_type = sig.args[0]
        ary = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, ary, [args[1]])
        return builder.load_atomic(pointer, ordering="acquire", align=8)

    return signature, codegen


@intrinsic
def atomic_store(typingctx, array, index, value):
    """``store atomic release``: array[index] = value (int64), after every earlier write."""
    signature = numba_types.void(array, index, value)

    def codegen(context, builder, sig, args):
        array_type = sig.args[0]
        ary = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, ary, [args[1]])
        builder.store_atomic(args[2], pointer, ordering="release", align=8)
        return context.get_dummy_value()

    return signature, codegen


#: ``call i32 @sched_yield()``: POSIX sched_yield, resolved by name when the kernel is
#: linked (so that the kernel can be cached), to give the core away while waiting
sched_yield = numba_types.ExternalFunction("sched_yield", numba_types.int32())


# -- borrowed views --------------------------------------------------------------------------


def _borrowed_view(context, builder, sig, array, offset, length, stride):
    # a view of ``array`` from element ``offset`` (length, stride: the view's) that
    # holds no reference to the array's memory: taking it and dropping it cost no
    # atomic reference counting, which the caller's own reference makes unnecessary
    source = context.make_array(sig.args[0])(context, builder, array)
    view = context.make_array(sig.return_type)(context, builder)
    data = builder.gep(source.data, [offset])
    populate_array(
        view, data=data, shape=cgutils.pack_array(builder, [length]),
        strides=cgutils.pack_array(builder, [stride]), itemsize=source.itemsize, meminfo=None,
    )  # fmt: skip
    return view._getvalue()


@intrinsic
def borrowed_row(typingctx, array, index):
    """``getelementptr``: array[index] of a C-contiguous 2-D array, a view without a reference."""
    # A row view per row and array otherwise costs two atomic operations on the
    # array's reference count, about a tenth of the time, and the threads share it.
    if not (isinstance(array, numba_types.Array) and array.ndim == 2 and array.layout == "C"):
        return None
    signature = array.copy(ndim=1, layout="C")(array, index)

    def codegen(context, builder, sig, args):
        source = context.make_array(sig.args[0])(context, builder, args[0])
        _, nx = cgutils.unpack_tuple(builder, source.shape)
        _, stride = cgutils.unpack_tuple(builder, source.strides)
        index = context.cast(builder, args[1], sig.args[1], numba_types.intp)
        offset = builder.mul(index, nx)
        return _borrowed_view(context, builder, sig, args[0], offset, nx, stride)

    return signature, codegen


@intrinsic
def borrowed_part(typingctx, array, start, stop):
    """``getelementptr``: array[start:stop] of a C-contiguous 1-D array, without a reference."""
    # 0 <= start <= stop <= the array's length: not checked
    if not (isinstance(array, numba_types.Array) and array.ndim == 1 and array.layout == "C"):
        return None
    signature = array(array, start, stop)

    def codegen(context, builder, sig, args):
        source = context.make_array(sig.args[0])(context, builder, args[0])
        (stride,) = cgutils.unpack_tuple(builder, source.strides)
        start = context.cast(builder, args[1], sig.args[1], numba_types.intp)
        stop = context.cast(builder, args[2], sig.args[2], numba_types.intp)
        length = builder.sub(stop, start)
        return _borrowed_view(context, builder, sig, args[0], start, length, stride)

    return signature, codegen


@intrinsic
def flag_words(typingctx, flags):
    """``bitcast i8* to i64*``: uint8 flags read eight at a time, as a borrowed uint64 view."""
    # of a C-contiguous 1-D array's first len // 8 words (the rest is left to the caller)
    if not (isinstance(flags, numba_types.Array) and flags.ndim == 1 and flags.layout == "C"):
        return None
    if flags.dtype != numba_types.uint8:
        return None
    signature = numba_types.Array(numba_types.uint64, 1, "C")(flags)

    def codegen(context, builder, sig, args):
        source = context.make_array(sig.args[0])(context, builder, args[0])
        (n,) = cgutils.unpack_tuple(builder, source.shape)
        eight = context.get_constant(numba_types.intp, 8)
        length = builder.sdiv(n, eight)
        view = context.make_array(sig.return_type)(context, builder)
        data = builder.bitcast(source.data, context.get_data_type(numba_types.uint64).as_pointer())
        populate_array(
            view, data=data, shape=cgutils.pack_array(builder, [length]),
            strides=cgutils.pack_array(builder, [eight]), itemsize=eight, meminfo=None,
        )  # fmt: skip
        return view._getvalue()

    return signature, codegen


@intrinsic
def borrowed(typingctx, array):
    """The whole array as a view without a reference (no LLVM op: the same pointers)."""
    # A function, inlined or not, takes and drops a reference to each array it is
    # given: 22 atomic operations per call of finder_fast._exact_row (eleven arrays,
    # four of them shared by the threads); a borrowed view's reference costs nothing
    if not isinstance(array, numba_types.Array):
        return None
    signature = array(array)

    def codegen(context, builder, sig, args):
        source = context.make_array(sig.args[0])(context, builder, args[0])
        view = context.make_array(sig.return_type)(context, builder)
        populate_array(
            view, data=source.data, shape=source.shape, strides=source.strides,
            itemsize=source.itemsize, meminfo=None,
        )  # fmt: skip
        return view._getvalue()

    return signature, codegen
