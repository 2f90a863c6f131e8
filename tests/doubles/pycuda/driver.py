"""Test double of pycuda.driver: the calls dbd-rt makes, with the real ones' refusals.

Device memory is host bytes keyed by fake addresses. Copies and kernels are queued on their stream
and run when it (or an event on it) is synchronised. Every call that needs a CUDA context checks
that one is current on the calling thread, as the driver API does (CUDA_ERROR_INVALID_CONTEXT).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np


class Error(Exception):
    pass


class LogicError(Error):
    pass


class MemoryError(Error):  # noqa: A001 (pycuda's own name)
    pass


_lock = threading.RLock()
_tls = threading.local()
_state: dict[str, Any] = {"initialised": False}
_addresses = itertools.count(0x7F00_0000_0000, 0x1_0000)
_allocations: dict[int, DeviceAllocation] = {}
_streams: dict[int, Stream] = {}
_primary: dict[int, Context] = {}


def _gpus() -> list[tuple[str, tuple[int, int]]]:
    spec = os.environ.get("DBD_DOUBLE_GPUS", "NVIDIA H200:9.0")
    out = []
    for item in filter(None, spec.split(";")):
        name, cc = item.rsplit(":", 1)
        major, minor = cc.split(".")
        out.append((name, (int(major), int(minor))))
    return out


def init(flags: int = 0) -> None:
    _state["initialised"] = True


def _need_init(call: str) -> None:
    if not _state["initialised"]:
        raise LogicError(f"{call} failed: initialization error")


def _stack() -> list[Context]:
    if not hasattr(_tls, "stack"):
        _tls.stack = []
    return _tls.stack


def _current(call: str) -> Context:
    _need_init(call)
    stack = _stack()
    if not stack:
        raise LogicError(f"{call} failed: invalid device context")
    ctx = stack[-1]
    if not ctx.valid:
        raise LogicError(f"{call} failed: context is destroyed")
    return ctx


def _current_context() -> Context | None:
    """For the TensorRT double: the context current on this thread (None if none)."""
    stack = _stack()
    return stack[-1] if stack else None


class Device:
    def __init__(self, ordinal: int) -> None:
        _need_init("cuDeviceGet")
        if not isinstance(ordinal, int) or not 0 <= ordinal < len(_gpus()):
            raise LogicError("cuDeviceGet failed: invalid device ordinal")
        self.ordinal = ordinal

    @staticmethod
    def count() -> int:
        _need_init("cuDeviceGetCount")
        return len(_gpus())

    def name(self) -> str:
        return _gpus()[self.ordinal][0]

    def compute_capability(self) -> tuple[int, int]:
        return _gpus()[self.ordinal][1]

    def retain_primary_context(self) -> Context:
        with _lock:
            ctx = _primary.get(self.ordinal)
            if ctx is None or not ctx.valid:
                ctx = _primary[self.ordinal] = Context(self, primary=True)
            ctx.retained += 1
            return ctx

    def make_context(self, flags: int = 0) -> Context:
        ctx = Context(self, primary=False)
        _stack().append(ctx)
        return ctx

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.ordinal == self.ordinal

    def __hash__(self) -> int:
        return self.ordinal


class Context:
    def __init__(self, device: Device, primary: bool) -> None:
        self.device, self.primary = device, primary
        self.valid = True
        self.retained = 0

    def push(self) -> None:
        if not self.valid:
            raise LogicError("cuCtxPushCurrent failed: context is destroyed")
        _stack().append(self)

    @staticmethod
    def pop() -> None:
        stack = _stack()
        if not stack:
            raise LogicError("context::pop failed: cannot pop non-current context")
        stack.pop()

    @staticmethod
    def get_device() -> Device:
        return _current("cuCtxGetDevice").device

    @staticmethod
    def synchronize() -> None:
        ctx = _current("cuCtxSynchronize")
        for stream in list(_streams.values()):
            if stream.context is ctx:
                stream.synchronize()

    def detach(self) -> None:
        if not self.valid:
            raise LogicError("context::detach failed: cannot detach from invalid context")
        self.retained -= 1
        if not self.primary or self.retained <= 0:
            self.valid = False


class DeviceAllocation:
    def __init__(self, nbytes: int, context: Context) -> None:
        self.nbytes = nbytes
        self.address = next(_addresses)
        self.memory = bytearray(nbytes)
        self.context = context
        self.freed = False

    def __int__(self) -> int:
        return self.address

    __index__ = __int__

    def free(self) -> None:
        _current("cuMemFree")
        if self.freed:
            raise LogicError("cuMemFree failed: invalid value (freed twice)")
        self.freed = True
        with _lock:
            _allocations.pop(self.address, None)


def mem_alloc(nbytes: int) -> DeviceAllocation:
    ctx = _current("cuMemAlloc")
    if not isinstance(nbytes, (int, np.integer)) or nbytes <= 0:
        raise LogicError("cuMemAlloc failed: invalid argument")
    alloc = DeviceAllocation(int(nbytes), ctx)
    with _lock:
        _allocations[alloc.address] = alloc
    return alloc


def _device_span(address: int, nbytes: int, call: str) -> memoryview:
    """The device bytes [address, address + nbytes), which must lie in one live allocation."""
    with _lock:
        for alloc in _allocations.values():
            if alloc.address <= address and address + nbytes <= alloc.address + alloc.nbytes:
                start = address - alloc.address
                return memoryview(alloc.memory)[start : start + nbytes]
    raise LogicError(f"{call} failed: invalid argument ({nbytes} bytes at {address:#x} are not inside one live device allocation)")


_pinned: set[int] = set()


def pagelocked_empty(shape: Any, dtype: Any, order: str = "C", mem_flags: int = 0) -> np.ndarray:
    _current("cuMemHostAlloc")
    array = np.empty(shape, dtype=dtype, order=order)
    _pinned.add(array.__array_interface__["data"][0])
    return array


def _host_buffer(obj: Any, writable: bool, call: str) -> memoryview:
    try:
        view = memoryview(obj)
    except TypeError:
        raise TypeError(f"{call}: expected a buffer, got {type(obj).__name__}") from None
    if not view.contiguous:
        raise ValueError(f"{call}: the host buffer is not contiguous")  # PyBUF_ANY_CONTIGUOUS
    if writable and view.readonly:
        raise ValueError(f"{call}: the host buffer is read-only")  # PyBUF_WRITABLE
    return view.cast("B")


def _stream_for(stream: Stream | None, call: str) -> Stream:
    ctx = _current(call)
    if stream is None:
        return _default_stream(ctx)
    if not isinstance(stream, Stream):
        raise TypeError(f"{call}: stream must be a Stream")
    if stream.context is not ctx:
        raise LogicError(f"{call} failed: invalid resource handle (stream of another context)")
    return stream


def _default_stream(ctx: Context) -> Stream:
    key = -id(ctx)
    if key not in _streams:
        s = Stream.__new__(Stream)
        s._setup(ctx, key)
    return _streams[key]


def memcpy_htod_async(dest: Any, src: Any, stream: Stream | None = None) -> None:
    s = _stream_for(stream, "cuMemcpyHtoDAsync")
    host = _host_buffer(src, writable=False, call="memcpy_htod_async")
    target = _device_span(int(dest), host.nbytes, "cuMemcpyHtoDAsync")
    s.enqueue(lambda: target.__setitem__(slice(None), host))  # reads the host buffer when it runs


def memcpy_dtoh_async(dest: Any, src: Any, stream: Stream | None = None) -> None:
    s = _stream_for(stream, "cuMemcpyDtoHAsync")
    host = _host_buffer(dest, writable=True, call="memcpy_dtoh_async")
    source = _device_span(int(src), host.nbytes, "cuMemcpyDtoHAsync")
    s.enqueue(lambda: host.__setitem__(slice(None), source))


class Stream:
    def __init__(self, flags: int = 0) -> None:
        self._setup(_current("cuStreamCreate"), next(_addresses))

    def _setup(self, ctx: Context, handle: int) -> None:
        self.context = ctx
        self.handle = handle
        self._ops: deque[Callable[[], None]] = deque()
        _streams[handle] = self

    def enqueue(self, op: Callable[[], None]) -> None:
        self._ops.append(op)

    def run_until(self, marker: object | None = None) -> None:
        """Run queued work in order, up to and including `marker` (all of it when None)."""
        while self._ops:
            op = self._ops.popleft()
            op()
            if marker is not None and op is marker:
                return

    def synchronize(self) -> None:
        _current("cuStreamSynchronize")
        self.run_until()

    def is_done(self) -> bool:
        return not self._ops


def _stream_by_handle(handle: int) -> Stream | None:
    """For the TensorRT double: the stream an integer handle names."""
    return _streams.get(handle)


class Event:
    def __init__(self, flags: int = 0) -> None:
        _current("cuEventCreate")
        self._stream: Stream | None = None
        self._marker: Callable[[], None] | None = None
        self.time: float | None = None

    def record(self, stream: Stream | None = None) -> Event:
        s = _stream_for(stream, "cuEventRecord")
        self.time = None

        def mark() -> None:
            self.time = time.perf_counter()

        self._stream, self._marker = s, mark
        s.enqueue(mark)
        return self

    def synchronize(self) -> Event:
        _current("cuEventSynchronize")
        if self._stream is not None and self.time is None:
            self._stream.run_until(self._marker)
        return self

    def query(self) -> bool:
        return self.time is not None

    def time_till(self, other: Event) -> float:
        _current("cuEventElapsedTime")
        if self.time is None or other.time is None:
            raise LogicError("cuEventElapsedTime failed: device not ready")
        return (other.time - self.time) * 1000.0

    def time_since(self, other: Event) -> float:
        return other.time_till(self)
