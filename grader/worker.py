"""The process that runs a student's answer cells while they are graded (untrusted side).

grader/sandbox.py starts it inside bubblewrap (``python -I worker.py CONFIG``), with a copy
of grader/protocol.py next to it; it talks to the grader over stdin/stdout with the framed
messages of that module. Nothing here is trusted: a student can change anything in this
process. What it sends back is checked as plain data by the grader, which compares it with
the reference it computed itself.

The process is a *zygote*: it runs the answer cells (``exec``) and then never runs the
student's functions itself. For each test cell the grader asks for a ``fork``; the child
serves that cell's calls and exits at ``end`` (or when it crashes); the zygote then reports
``{"child_exit": status}``. So every test cell starts from the state right after the answer
cells: nothing a call stored in Python objects survives into the next test cell.

Requests (a dict with ``op``):

- ``exec``    (zygote) run a cell's source in the notebook namespace;
- ``fork``    (zygote) start a child for one test cell; the child replies ``{"ok": None}``;
- ``call``    (child) call a global name, a handle, or an attribute of either;
- ``map``     (child) the same for a list of ``(args, kwargs)``, one reply;
- ``getattr`` (child) read an attribute of a global or a handle;
- ``end``     (child) exit.

Arguments may hold grader functions (``{"__callback__": n}``): calling one sends
``{"callback": n, "args": ..., "kwargs": ...}`` and waits for ``{"ok": result}``.

Replies: ``{"ok": value, "gens": [...], "models": [...], "optims": [...], "changed": [...]}``
(the new states of the generators, models and optimizers passed in, and which arguments
the call changed in place) or ``{"error": type name, "message": str}``.
"""

import ctypes
import json
import os
import resource
import sys

PLAIN = (int, float, str, bool, bytes, complex, type(None))
BLOCK_KEYS = ("CPU", "CUDA", "Meta", "AutogradCPU", "AutogradCUDA", "AutogradMeta", "AutogradOther",
              "CompositeExplicitAutograd", "QuantizedCPU", "SparseCPU", "NestedTensorCPU",
              "AutogradNestedTensor", "ZeroTensor", "Python")


def _raiser(*args, **kwargs):
    raise RuntimeError("this PyTorch operator implements the answer and is disabled while grading")


def blocked_overloads(op_names):
    """Every OpOverload of the ATen operators ``op_names`` (all overloads of each name)."""
    import torch

    out = []
    for name in op_names:
        packet = getattr(torch.ops.aten, name, None)
        if packet is None:
            continue
        for overload in packet.overloads():
            out.append(getattr(packet, overload))
    return out


def decomposition_tables():
    """Every table that maps an ATen operator to a Python decomposition or reference."""
    import torch._decomp

    tables = [torch._decomp.decomposition_table]
    tables += list(getattr(torch._decomp, "global_decomposition_table", {}).values())
    try:
        import torch._prims_common  # noqa: F401
        import torch._refs  # noqa: F401 - registers the Python references
    except ImportError:
        pass
    return tables


def block_ops(op_names):
    """Make each ATen operator raise in this process, whatever Python path reaches it.

    Every overload of each name gets a raising kernel for the backend, autograd and
    composite dispatch keys (direct registrations win over the composite ones), through a
    library handle whose only reference is leaked, so no Python object can unregister them;
    every Python decomposition or reference of those overloads (torch._decomp, torch._refs,
    meta tables) is replaced by the raiser; ``torch.compile`` (whose code generator
    decomposes operators itself) is disabled.
    """
    import torch

    overloads = blocked_overloads(op_names)
    handle = torch._C._dispatch_library("IMPL", "aten", "")
    for op in overloads:
        full = op._schema.name.split("::", 1)[1] + ("" if op._overloadname == "default" else "." + op._overloadname)
        for key in BLOCK_KEYS:
            try:
                handle.impl(full, key, _raiser)
            except RuntimeError:
                pass
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(handle))  # never released, never reachable
    del handle
    blocked = set(overloads) | {getattr(torch.ops.aten, n, None) for n in op_names}
    for table in decomposition_tables():
        for key in list(table):
            if key in blocked:
                table[key] = _raiser
    for op in overloads:  # Python kernels registered on the overload objects themselves
        if hasattr(op, "py_kernels"):
            op.py_kernels.clear()

    def no_compile(*args, **kwargs):
        raise RuntimeError("torch.compile is disabled while grading this part")

    torch.compile = no_compile  # (torch._dynamo and torch._inductor stay importable: optimizers use them)


class Session:
    """The notebook namespace, the objects handed out as handles, and the message loop."""

    def __init__(self, inp, out):
        import torch

        from grader import protocol

        self.torch, self.protocol = torch, protocol
        self.inp, self.out = inp, out
        self.ns = {"__name__": "__main__", "__builtins__": __builtins__}
        self.handles = {}

    # ---- encoding -------------------------------------------------------------------
    def encode(self, value):
        """A result as plain data: tensors copied, other objects left here as handles."""
        torch, p = self.torch, self.protocol

        def special(v):
            if isinstance(v, PLAIN) and type(v) in PLAIN:
                return v
            if type(v) is torch.Tensor and v.layout == torch.strided and v.dtype in p.DTYPE_NAMES:
                return v.detach().cpu().resolve_conj().resolve_neg().contiguous().clone()
            if type(v) is torch.dtype and v in p.DTYPE_NAMES:
                return {p.DTYPE: p.DTYPE_NAMES[v]}
            n = len(self.handles) + 1
            self.handles[n] = v
            return {p.HANDLE: n, "type": type(v).__name__, "callable": callable(v)}

        def walk(v, depth=0):
            if isinstance(v, list):  # rebuilt: a list repeated in the result is copied, not shared
                return [walk(x, depth + 1) for x in v]
            if isinstance(v, tuple):  # torch.Size, named tuples: plain tuples
                return tuple(walk(x, depth + 1) for x in v)
            if isinstance(v, dict) and p.tag_of(dict(v)) is None and all(
                    type(k) in PLAIN or type(k) is tuple for k in v):  # OrderedDict (state_dict): a dict
                return {k: walk(x, depth + 1) for k, x in v.items()}
            return special(v)

        return walk(value)

    def decode(self, value, state):
        torch, p = self.torch, self.protocol

        def special(v):
            tag = p.tag_of(v)
            if tag is None:
                return v
            if tag == p.HANDLE:
                return self.handles[v[p.HANDLE]]
            if tag == p.DTYPE:
                return p.dtype_from_name(v[p.DTYPE])
            if tag == p.GENERATOR:
                g = torch.Generator(device=v["device"])
                g.set_state(v[p.GENERATOR])
                state["gens"].append(g)
                return g
            if tag == p.GENREF:
                return state["gens"][v[p.GENREF]]
            if tag == p.CALLBACK:
                return self.callback(v[p.CALLBACK])
            if tag == p.GPT:
                from lmcourse.model import GPT, GPTConfig

                model = GPT(GPTConfig(**v[p.GPT]))
                model.load_state_dict(v["state"])
                model.train(v["training"])
                state["models"].append(model)
                return model
            if tag == p.OPTIM:
                model = state["models"][v["model"]]
                if v[p.OPTIM] not in p.OPTIMIZERS:
                    raise TypeError(f"optimizer {v[p.OPTIM]} cannot be sent")
                opt = getattr(torch.optim, v[p.OPTIM])(model.parameters())
                opt.load_state_dict(v["state"])
                state["optims"].append(opt)
                return opt
            raise TypeError(f"unknown tag {tag}")

        return p.convert(value, special)

    def callback(self, cid):
        def call_grader(*args, **kwargs):
            self.reply({"callback": cid, "args": self.encode(args), "kwargs": self.encode(kwargs)})
            answer = self.read()
            if "error" in answer:
                raise RuntimeError(f"the grader's function failed: {answer['error']}")
            return self.decode(answer["ok"], {"gens": [], "models": [], "optims": []})

        return call_grader

    def read(self):
        return self.protocol.read_message(self.inp, None, 1 << 40)

    def reply(self, msg):
        self.protocol.write_message(self.out, msg)

    def target(self, t):
        obj = self.handles[t["handle"]] if "handle" in t else self.ns[t["name"]]
        for attr in t.get("attrs", ()):
            obj = getattr(obj, attr)
        return obj

    # ---- requests -------------------------------------------------------------------
    def _snapshot(self, value):
        torch = self.torch
        if type(value) is torch.Tensor:
            return ("tensor", value.detach().clone())
        if type(value) in (list, tuple):
            return (type(value), [self._snapshot(v) for v in value])
        if type(value) is dict:
            return (dict, {k: self._snapshot(v) for k, v in value.items()})
        return ("other", None)

    def _same(self, value, snap):
        torch = self.torch
        kind, data = snap
        if kind == "tensor":
            if type(value) is not torch.Tensor or value.shape != data.shape or value.dtype != data.dtype:
                return False
            v = value.detach()
            return bool(torch.equal(v, data) or (v.is_floating_point() and torch.equal(v.isnan(), data.isnan())
                                                 and torch.equal(v.nan_to_num(0.0), data.nan_to_num(0.0))))
        if kind in (list, tuple):
            return type(value) is kind and len(value) == len(data) and all(map(self._same, value, data))
        if kind is dict:
            return type(value) is dict and value.keys() == data.keys() and all(
                self._same(value[k], data[k]) for k in data)
        return True

    def handle(self, req):
        op = req["op"]
        torch = self.torch
        state = {"gens": [], "models": [], "optims": []}
        obj = self.target(req["target"])
        changed = []
        if op == "getattr":
            return {"ok": self.encode(obj)}
        if op == "map":  # many calls in one message: [(args, kwargs), ...] -> [result, ...]
            calls = self.decode(req["calls"], state)
            result = [obj(*args, **kwargs) for args, kwargs in calls]
        else:
            args = self.decode(req["args"], state)
            kwargs = self.decode(req["kwargs"], state)
            snaps = [self._snapshot(a) for a in args]
            ksnaps = {k: self._snapshot(v) for k, v in kwargs.items()}
            result = obj(*args, **kwargs)
            if req.get("grad"):  # value_and_grad: the backward pass runs here
                result.backward()
                grads = tuple(a.grad for a in args if type(a) is torch.Tensor and a.requires_grad)
                result = (result, grads)
            changed = [i for i, (a, s) in enumerate(zip(args, snaps)) if not self._same(a, s)]
            changed += [k for k, s in ksnaps.items() if not self._same(kwargs[k], s)]
        return {
            "ok": self.encode(result),
            "gens": [g.get_state() for g in state["gens"]],
            "models": [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in state["models"]],
            "optims": [self.encode(o.state_dict()) for o in state["optims"]],
            "changed": changed,
        }

    def serve_child(self):
        """The child of one test cell: answer calls until ``end``."""
        self.reply({"ok": None})
        while True:
            try:
                req = self.read()
            except Exception:  # noqa: BLE001 - the grader is gone
                os._exit(0)
            if req.get("op") == "end":
                os._exit(0)
            try:
                msg = self.handle(req)
            except BaseException as e:  # noqa: BLE001 - every failure of student code is reported
                msg = {"error": type(e).__name__, "message": str(e)[:2000]}
            try:
                self.reply(msg)
            except Exception as e:  # noqa: BLE001 - an unencodable result
                self.reply({"error": "TypeError", "message": f"the result cannot be sent back: {e}"[:2000]})

    def serve(self):
        """The zygote: run cells, fork one child per test cell, report how it ended."""
        while True:
            try:
                req = self.read()
            except Exception:  # noqa: BLE001 - the grader is gone
                return
            if req.get("op") == "fork":
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    try:
                        self.serve_child()
                    finally:
                        os._exit(0)
                _, status = os.waitpid(pid, 0)
                self.reply({"child_exit": status})
                continue
            try:
                exec(compile(req["source"], req.get("name", "<cell>"), "exec"), self.ns)
                msg = {"ok": None}
            except BaseException as e:  # noqa: BLE001
                msg = {"error": type(e).__name__, "message": str(e)[:2000]}
            self.reply(msg)


def _limits(config):
    for name, key in (("RLIMIT_AS", "memory_bytes"), ("RLIMIT_NPROC", "nproc"), ("RLIMIT_FSIZE", "fsize_bytes"),
                      ("RLIMIT_CPU", "cpu_seconds")):
        value = config.get(key)
        if value:
            resource.setrlimit(getattr(resource, name), (value, value))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main():
    config = json.loads(sys.argv[1])
    _limits(config)
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
        block_ops(config["block_ops"])
    session = Session(inp, out)
    session.reply({"ready": True})  # the grader's time limits start now, not during imports
    session.serve()


if __name__ == "__main__":
    main()
