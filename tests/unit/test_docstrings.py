"""Every public state and execution function documents each of its parameters and shows
an example (a CLI line or an SLS block), so that ``salt-call sys.doc`` and
``sys.state_doc`` are a usable reference (issue 30)."""

import ast
import glob
import os
import re

import lvstun

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_state_and_execution_function_documents_its_parameters_with_an_example():
    missing = []
    for path in sorted(glob.glob(os.path.join(REPO, "_states", "*.py")) +
                       glob.glob(os.path.join(REPO, "_modules", "*.py"))):
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
                continue
            doc = ast.get_docstring(node) or ""
            where = f"{os.path.relpath(path, REPO)}:{node.name}"
            missing += [f"{where}: {arg.arg}" for arg in node.args.args if arg.arg not in _documented(doc)]
            if ".. code-block::" not in doc:
                missing.append(f"{where}: no example")
    assert missing == []


_PARAMETER_LINE = re.compile(r"[a-z_][a-z0-9_]*(, [a-z_][a-z0-9_]*)*")


def _documented(doc):
    """The parameters a docstring documents: named on a line of their own, Salt's way
    (``name`` then its description indented; several as ``a, b``), or as ``name``."""
    names = set(re.findall(r"``([a-z_][a-z0-9_]*)``", doc))
    for line in doc.splitlines():
        if not line.startswith(" ") and _PARAMETER_LINE.fullmatch(line.strip()):
            names |= set(line.strip().split(", "))
    return names


def test_the_shared_package_names_each_of_its_modules_in_its_layers():
    """``lvstun``'s docstring is its map (model, IPVS, host, checks, operations, runtime):
    a module added without a place in it fails here."""
    modules = {os.path.basename(path)[:-3] for path in glob.glob(os.path.join(REPO, "_utils", "lvstun", "*.py"))}
    assert sorted(m for m in modules - {"__init__"} if f"``{m}``" not in lvstun.__doc__) == []
