"""The process that runs a student's answer cells while they are graded (untrusted side).

scripts/grade.py starts it inside a bubblewrap sandbox (``python -I grade_sandbox.py CONFIG``)
and talks to it over stdin/stdout with length-prefixed ``torch.save`` messages that are read
back with ``torch.load(weights_only=True)``: plain data only (tensors, numbers, strings,
lists, tuples, dicts), never pickled code. Nothing here is trusted by the grader: a student
can change anything in this process; what it can send back is plain data that the grader
compares with the reference it computed itself.

Requests (a dict with ``op``):

- ``exec``    run a cell's source in the notebook namespace;
- ``map``     the same for a list of ``(args, kwargs)``, one reply with the list of results;
- ``call``    call a global name, a handle, or an attribute of either, with encoded arguments;
- ``getattr`` read an attribute of a global or a handle.

Arguments may be functions of the grader (``{"__callback__": n}``): calling one here sends
``{"callback": n, "args": ..., "kwargs": ...}`` and waits for ``{"ok": result}``.

Replies: ``{"ok": value, "gens": [...], "models": [...], "optims": [...]}`` (the new states
of the generators, models and optimizers passed as arguments, so that the grader can write
them back into its own objects) or ``{"error": type name, "message": str}``. Values that are
not plain data (a module, a student's object) stay here and go back as ``{"__handle__": n}``.

It uses only the standard library and torch (the lmcourse modules that a part may use are
copied next to it by the grader; the others are absent).
"""

import ctypes
import io
import json
import os
import resource
import struct
import sys

PLAIN = (int, float, str, bool, bytes, type(None))


def _block_ops(op_names):
    """Make each ATen operator raise in this process, whatever Python path reaches it.

    The kernels are registered for the backend and autograd dispatch keys (which win over
    the composite ones), through a library handle whose only reference is leaked, so no
    Python object can unregister them.
    """
    import torch

    def raiser(*args, **kwargs):
        raise RuntimeError("this PyTorch operator implements the answer and is disabled while grading")

    handle = torch._C._dispatch_library("IMPL", "aten", "")
    keys = ["CPU", "CUDA", "AutogradCPU", "AutogradCUDA", "Meta"]
    for name in op_names:
        packet = getattr(torch.ops.aten, name, None)
        if packet is None:
            continue
        for overload in packet.overloads():
            full = name if overload == "default" else f"{name}.{overload}"
            for key in keys:
                try:
                    handle.impl(full, key, raiser)
                except RuntimeError:
                    pass
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(handle))  # never released, never reachable
    del handle


class Session:
    def __init__(self, inp, out):
        import torch

        self.torch = torch
        self.inp, self.out = inp, out
        self.ns = {"__name__": "__main__", "__builtins__": __builtins__}
        self.handles = {}

    # ---- encoding -------------------------------------------------------------------
    def encode(self, value):
        torch = self.torch
        if isinstance(value, PLAIN):
            return value
        if type(value) is torch.Tensor:
            return value.detach()
        if type(value) in (list, tuple):
            return type(value)(self.encode(v) for v in value)
        if isinstance(value, dict) and all(isinstance(k, PLAIN) or type(k) is tuple for k in value):
            return {k: self.encode(v) for k, v in value.items()}
        if type(value) is torch.dtype:
            return {"__dtype__": str(value)}
        n = len(self.handles) + 1
        self.handles[n] = value
        return {"__handle__": n, "type": type(value).__name__, "callable": callable(value)}

    def decode(self, value, state):
        torch = self.torch
        if type(value) is dict:
            if "__handle__" in value:
                return self.handles[value["__handle__"]]
            if "__dtype__" in value:
                return getattr(torch, value["__dtype__"].split(".")[-1])
            if "__generator__" in value:
                g = torch.Generator(device=value["device"])
                g.set_state(value["__generator__"])
                state["gens"].append(g)
                return g
            if "__genref__" in value:  # the same generator again
                return state["gens"][value["__genref__"]]
            if "__callback__" in value:  # a function of the grader: it runs there
                return self.callback(value["__callback__"])
            if "__gpt__" in value:
                from lmcourse.model import GPT, GPTConfig

                model = GPT(GPTConfig(**value["__gpt__"]))
                model.load_state_dict(value["state"])
                model.train(value["training"])
                state["models"].append(model)
                return model
            if "__optim__" in value:
                model = state["models"][value["model"]]
                opt = getattr(torch.optim, value["__optim__"])(model.parameters())
                opt.load_state_dict(value["state"])
                state["optims"].append(opt)
                return opt
            return {k: self.decode(v, state) for k, v in value.items()}
        if type(value) in (list, tuple):
            return type(value)(self.decode(v, state) for v in value)
        return value

    def callback(self, cid):
        def call_grader(*args, **kwargs):
            self.reply({"callback": cid, "args": self.encode(args), "kwargs": self.encode(kwargs)})
            answer = self.read()
            if "error" in answer:
                raise RuntimeError(f"the grader's function failed: {answer['error']}")
            return self.decode(answer["ok"], {"gens": [], "models": [], "optims": []})

        return call_grader

    def read(self):
        (n,) = struct.unpack("<Q", _read(self.inp, 8))
        return self.torch.load(io.BytesIO(_read(self.inp, n)), weights_only=True)

    def target(self, t):
        if "handle" in t:
            obj = self.handles[t["handle"]]
        else:
            obj = self.ns[t["name"]]
        for attr in t.get("attrs", ()):
            obj = getattr(obj, attr)
        return obj

    # ---- requests -------------------------------------------------------------------
    def handle(self, req):
        op = req["op"]
        if op == "exec":
            code = compile(req["source"], req.get("name", "<cell>"), "exec")
            exec(code, self.ns)
            return {"ok": None}
        torch = self.torch
        state = {"gens": [], "models": [], "optims": []}
        obj = self.target(req["target"])
        if op == "getattr":
            return {"ok": self.encode(obj)}
        if op == "map":  # many calls in one message: [(args, kwargs), ...] -> [result, ...]
            calls = self.decode(req["calls"], state)
            result = [obj(*args, **kwargs) for args, kwargs in calls]
        else:
            args = self.decode(req["args"], state)
            result = obj(*args, **self.decode(req["kwargs"], state))
            if req.get("grad"):  # value_and_grad: the backward pass runs here
                result.backward()
                grads = tuple(a.grad for a in args if type(a) is torch.Tensor and a.requires_grad)
                result = (result, grads)
        return {
            "ok": self.encode(result),
            "gens": [g.get_state() for g in state["gens"]],
            "models": [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in state["models"]],
            "optims": [o.state_dict() for o in state["optims"]],
        }

    def reply(self, msg):
        buf = io.BytesIO()
        self.torch.save(msg, buf)
        data = buf.getvalue()
        os.write(self.out, struct.pack("<Q", len(data)))
        view = memoryview(data)
        while view:
            n = os.write(self.out, view)
            view = view[n:]


def _read(fd, n):
    chunks = []
    while n:
        b = os.read(fd, n)
        if not b:
            raise EOFError
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def main():
    config = json.loads(sys.argv[1])
    mem = config.get("memory_bytes")
    if mem:
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    cpu = config.get("cpu_seconds")
    if cpu:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    # the protocol keeps private copies of stdin/stdout; the student's prints go to stderr
    inp, out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    for path in reversed(config.get("sys_path", [])):
        sys.path.insert(0, path)
    import torch

    torch.set_num_threads(config.get("threads", 1))
    if config.get("block_ops"):
        _block_ops(config["block_ops"])
    session = Session(inp, out)
    session.reply({"ready": True})  # the grader's time limits start now, not during imports
    while True:
        try:
            req = session.read()
        except EOFError:
            return
        try:
            msg = session.handle(req)
        except BaseException as e:  # noqa: BLE001 - every failure of student code is reported
            if isinstance(e, (KeyboardInterrupt, SystemExit)) and req["op"] != "exec":
                pass
            msg = {"error": type(e).__name__, "message": str(e)[:2000]}
        try:
            session.reply(msg)
        except Exception as e:  # noqa: BLE001 - an unencodable result
            session.reply({"error": "TypeError", "message": f"the result cannot be sent back: {e}"[:2000]})


if __name__ == "__main__":
    main()
