"""A custom import-linter contract: no import cycle between any two modules of a package.

import-linter's own ``acyclic_siblings`` contract compares siblings (each sub-package squashed
into one node), so it misses a cycle between a package's ``__init__`` and one of its own
modules (``features/__init__.py`` imports ``features/ssl.py``, which imports a name from
``features/__init__.py``). This contract looks at every module as its own node: it finds the
strongly connected components of the import graph of ``containers`` (imports inside functions
included, as grimp reads them) and fails on any with more than one module.

Registered in pyproject.toml:

    [tool.importlinter]
    contract_types = ["acyclic_modules: tools.importlinter_contracts.AcyclicModulesContract"]

    [[tool.importlinter.contracts]]
    type = "acyclic_modules"
    containers = ["medsyn.generators"]
"""

from __future__ import annotations

from importlinter import Contract, ContractCheck, fields, output


def strongly_connected_components(nodes, successors) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit); components of one node are left out
    unless the node imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(successors(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(successors(child)))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in successors(node):
                    components.append(sorted(component))
    return sorted(components)


class AcyclicModulesContract(Contract):
    """No module of ``containers`` takes part in an import cycle with another of them."""

    type_name = "acyclic_modules"

    containers = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        modules: set[str] = set()
        for container in self.containers:  # type: ignore[attr-defined]
            modules |= {container} | graph.find_descendants(container)

        def successors(module: str) -> set[str]:
            return graph.find_modules_directly_imported_by(module) & modules

        cycles = []
        for component in strongly_connected_components(modules, successors):
            members = set(component)
            edges = []
            for importer in component:
                for imported in sorted(successors(importer) & members):
                    details = graph.get_import_details(importer=importer, imported=imported)
                    lines = [d["line_number"] for d in details]
                    edges.append((importer, imported, lines))
            cycles.append({"modules": component, "imports": edges})
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            output.print_error(f"Import cycle between {len(cycle['modules'])} modules:")
            output.new_line()
            for importer, imported, lines in cycle["imports"]:
                where = ", ".join(f"l.{n}" for n in lines)
                output.indent_cursor()
                output.print_error(f"{importer} -> {imported} ({where})", bold=False)
            output.new_line()
