"""The type stub (netmap.pyi) names what the module has, and the module
documents what it has."""

import ast
import os

import netmap

STUB = os.path.join(os.path.dirname(__file__), "..", "netmap.pyi")


def _stub():
    tree = ast.parse(open(STUB).read())
    names, classes = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            classes[node.name] = {n.name if isinstance(n, ast.FunctionDef) else n.target.id
                                  for n in node.body if isinstance(n, (ast.FunctionDef, ast.AnnAssign))}
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names, classes


def test_stub_matches_module():
    names, classes = _stub()
    public = {n for n in dir(netmap) if not n.startswith("_")}
    assert public - names == set(), "in the module, not in the stub"
    typed_dicts = {n for n, members in classes.items() if n not in public}
    assert names - public - typed_dicts - {"BytesLike", "_FileLike"} == set(), "in the stub, not in the module"
    for cls in ("NetmapDesc", "NetmapRing", "NetmapSlot", "NetmapInterface", "Poll"):
        have = {n for n in dir(getattr(netmap, cls)) if not n.startswith("_")}
        stub = {n for n in classes[cls] if not n.startswith("_")}
        assert have == stub, (cls, have ^ stub)


def test_module_is_documented():
    assert "NetmapDesc" in netmap.__doc__
    for name in ("NetmapDesc", "Poll", "ports", "port_stats", "port_rings", "switches", "switch_ports",
                 "switch_set_lookup", "regions", "region_create", "region_delete", "workers", "poll", "select"):
        assert getattr(netmap, name).__doc__, name
    for meth in ("send", "recv_into", "recv", "counters", "txsync", "rxsync", "getfd", "close", "poll"):
        assert getattr(netmap.NetmapDesc, meth).__doc__, meth
