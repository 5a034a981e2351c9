"""The learner's core stands alone: `import loramini` needs only torch, safetensors and numpy, and nothing cycles."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "loramini"
CORE = ("layer", "config", "inject", "counting", "io", "files", "upstream", "_version", "__init__")
CORE_DEPENDENCIES = {"torch", "safetensors", "numpy"}
# Imported inside one function each, for an optional feature that needs the extra anyway.
OPTIONAL_INSIDE_FUNCTIONS = {("io", "peft"),  # export_peft: writes a PEFT adapter
                             ("counting", "transformers")}  # counting a hub model's parameters
HEAVY = ("transformers", "datasets", "peft", "accelerate", "matplotlib", "sklearn", "scipy", "pandas", "nbformat")


def _imports(module: str):
    """(top-level package or '.sibling', at module level?) for every import statement in loramini/<module>.py."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if not node.level:
                names = [node.module.split(".")[0]]
            else:  # "from .x import y" → ".x"; "from . import y" → ".y" (y a module) or "." (a name of __init__)
                names = ["." + node.module] if node.module else \
                    ["." + a.name if (PACKAGE / f"{a.name}.py").exists() else "." for a in node.names]
        else:
            continue
        for name in names:
            yield name, id(node) in top_level


def test_importing_loramini_loads_no_training_notebook_or_course_library():
    blocked = "; ".join(f"sys.modules[{m!r}] = None" for m in HEAVY)  # importing any of them now fails
    code = (f"import sys; {blocked}; import torch, loramini; "
            "layer = loramini.LoRAMiniLinear(torch.nn.Linear(16, 12), r=2, a=4, b=4); "
            "model = torch.nn.Sequential(); model.add_module('query', torch.nn.Linear(16, 16)); "
            "loramini.inject(model, loramini.LoRAMiniConfig(r=2, a=4, b=4, target_modules=['query'])); "
            "print(layer(torch.randn(3, 16)).shape, loramini.count_parameters(model).adapter)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout.split() == ["torch.Size([3,", "12])", str(2 * (4 + 4))]

    code = "import sys, loramini; print(sorted(m for m in %r if m in sys.modules))" % (HEAVY,)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr[-1500:]


def test_training_names_still_load_from_the_package_on_first_use():
    import loramini
    from loramini.train import TrainConfig, TrainingDiverged

    assert loramini.TrainConfig is TrainConfig and loramini.TrainingDiverged is TrainingDiverged
    assert "TrainConfig" in dir(loramini) and "TrainConfig" in loramini.__all__


def test_core_modules_import_only_the_stdlib_torch_safetensors_numpy_and_each_other():
    for module in CORE:
        for name, top_level in _imports(module):
            if name.startswith("."):
                assert name[1:] in CORE, f"{module}.py imports {name} (outside the core)"
            elif name not in sys.stdlib_module_names and name not in CORE_DEPENDENCIES:
                assert not top_level and (module, name) in OPTIONAL_INSIDE_FUNCTIONS, f"{module}.py imports {name}"


def test_no_module_imports_the_package_itself_and_module_level_imports_do_not_cycle():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    graph = {}
    for module in modules:
        found = list(_imports(module))
        for name, top_level in found:  # the tooling (course, checks) may re-import the package inside a function
            if top_level or module in CORE:
                assert name not in ("loramini", "."), f"{module}.py imports the package's __init__ (a cycle)"
        graph[module] = {name[1:] for name, top in found if top and name[1:] in modules and module != "__init__"}

    state = {}

    def visit(module, path):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import cycle: {' -> '.join(path + [module])}"
        state[module] = "open"
        for dep in graph[module]:
            visit(dep, path + [module])
        state[module] = "done"

    for module in graph:
        visit(module, [])
