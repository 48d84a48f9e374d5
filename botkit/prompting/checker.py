"""Finding every undefined name in a prompt folder's templates, without rendering them.

Rendering finds a misspelt name only in the branch that runs; `botkit check`
walks each template's syntax tree instead, through every branch, include and
macro, against the documented context (`TemplateContext`) and whatever the
templates themselves set, loop over, define or import.

The checker knows the *shape* of each context value (`shapes.py`), follows it
through loops, `set` and a few filters (`first`, `sort`, `selectattr`,
`map(attribute=…)` …), and stops judging where it cannot know (a macro's
arguments, a call's result).
A name guarded by `is defined` or `| default(…)` is not reported, as Jinja
does not fail on it either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import jinja2
from jinja2 import nodes

from botkit.errors import Problem
from botkit.prompting.shapes import (
    ANY,
    HANDOFF_PREFIX,
    LOOP,
    TEXT,
    ListOf,
    Record,
    Shape,
    Table,
    TemplateContext,
    Unknown,
    Value,
)
from botkit.prompting.templates import DEFAULTS, SUFFIX, PromptTemplates, did_you_mean


def check_templates(templates: PromptTemplates, context: TemplateContext) -> list[Problem]:
    """Every undefined name, field, key, filter and test in every template of the folder."""
    return _Checker(templates, context).run()


Path_ = tuple[str, ...]
"""A lookup written as a chain of names, such as ("vars", "company"), for guards."""


@dataclass(slots=True)
class _Scope:
    """The names visible at one point of a template; `if` bodies share their parent's."""

    names: dict[str, Shape] = field(default_factory=dict)
    parent: _Scope | None = None
    guards: frozenset[Path_] = frozenset()
    shares_names: bool = False
    """True for an `if` branch: what it sets is seen after the `if` (Jinja has no block
    scope there); a `for` body, macro or `with` keeps its names to itself."""

    def lookup(self, name: str) -> Shape | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None

    def assign(self, name: str, shape: Shape) -> None:
        scope = self
        while scope.shares_names and scope.parent is not None:
            scope = scope.parent
        scope.names[name] = shape

    def guarded(self, path: Path_) -> bool:
        scope: _Scope | None = self
        while scope is not None:
            if path in scope.guards:
                return True
            scope = scope.parent
        return False

    def visible(self) -> set[str]:
        scope: _Scope | None = self
        seen: set[str] = set()
        while scope is not None:
            seen.update(scope.names)
            scope = scope.parent
        return seen

    def child(self, guards: frozenset[Path_] = frozenset(), *, shares: bool = False) -> _Scope:
        return _Scope(parent=self, guards=guards, shares_names=shares)


class _Checker:
    def __init__(self, templates: PromptTemplates, context: TemplateContext) -> None:
        self._templates = templates
        self._env = templates.environment
        self._context = context
        self._problems: dict[str, Problem] = {}
        self._reached: set[str] = set()
        self._stack: list[str] = []
        self._file = ""
        self._parsed: dict[str, nodes.Template | None] = {}
        self._macros: list[tuple[nodes.Macro, _Scope]] = []

    def run(self) -> list[Problem]:
        files = self._templates.files()
        optional = {f"{name}{SUFFIX}" for name in DEFAULTS}
        entries = [
            f for f in files if f == "system.md.j2" or f in optional or f.startswith(HANDOFF_PREFIX)
        ]
        for name in entries:
            self._template(name, self._top_scope(name))
        # What no entry includes is checked on its own, against the whole context.
        for name in files:
            if name not in entries and name not in self._reached:
                self._template(name, self._top_scope(name))
        return sorted(self._problems.values(), key=lambda p: (str(p.path), p.line or 0))

    def _top_scope(self, template: str) -> _Scope:
        return _Scope(names=self._context.names(template))

    # -- templates -----------------------------------------------------------------------

    def _parse(self, name: str) -> nodes.Template | None:
        if name not in self._parsed:
            tree = None
            try:
                source, filename, _ = self._env.loader.get_source(self._env, name)  # type: ignore[union-attr]
                tree = self._env.parse(source, name, filename)
            except jinja2.TemplateSyntaxError as err:
                self._report(err.message or str(err), err.lineno, file=name)
            except jinja2.TemplateNotFound:
                pass  # reported where it is included
            self._parsed[name] = tree
        return self._parsed[name]

    def _template(self, name: str, scope: _Scope) -> None:
        if name in self._stack:  # a template that includes itself: once is enough
            return
        tree = self._parse(name)
        if tree is None:
            return
        outer, outer_macros = self._file, self._macros
        self._stack.append(name)
        self._file, self._macros = name, []
        try:
            self._statements(tree.body, scope)
            # A macro's body runs when it is called, and sees what the template set
            # after it: check it once the whole template has been walked.
            while self._macros:
                macro, inner = self._macros.pop(0)
                self._statements(macro.body, inner)
        finally:
            self._stack.pop()
            self._file, self._macros = outer, outer_macros

    def _other_template(self, node: nodes.Node, scope: _Scope, *, with_context: bool) -> None:
        """Follow an include, import or extends whose name is written out."""
        template = getattr(node, "template", None)
        self._expression(template, scope)
        if not isinstance(template, nodes.Const) or not isinstance(template.value, str):
            return  # a name computed at run time cannot be followed
        name = template.value
        if name not in self._parsed and not self._templates.has(name):
            if not getattr(node, "ignore_missing", False):
                self._report(f"included template not found: {name}", node.lineno)
            return
        self._reached.add(name)
        if with_context:
            self._template(name, _Scope(names={}, parent=scope))
        else:  # Jinja hands an imported template only the globals
            self._template(name, _Scope())

    # -- statements ----------------------------------------------------------------------

    def _statements(self, body: Sequence[nodes.Node], scope: _Scope) -> None:
        for node in body:
            self._statement(node, scope)

    def _statement(self, node: nodes.Node, scope: _Scope) -> None:  # noqa: C901 - one dispatch
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                if not isinstance(child, nodes.TemplateData):
                    self._expression(child, scope)
        elif isinstance(node, nodes.Assign):
            self._bind(node.target, self._expression(node.node, scope), scope)
        elif isinstance(node, nodes.AssignBlock):
            self._statements(node.body, scope.child())
            if node.filter is not None:
                self._expression(node.filter, scope)
            self._bind(node.target, TEXT, scope)
        elif isinstance(node, nodes.If):
            self._if(node, scope)
        elif isinstance(node, nodes.For):
            self._for(node, scope)
        elif isinstance(node, nodes.Macro):
            for default in node.defaults:
                self._expression(default, scope)
            scope.assign(node.name, ANY)
            inner = scope.child()
            for name in ("varargs", "kwargs", "caller"):
                inner.names[name] = ANY
            for arg in node.args:
                inner.names[arg.name] = ANY
            self._macros.append((node, inner))
        elif isinstance(node, nodes.CallBlock):
            self._expression(node.call, scope)
            for default in node.defaults:
                self._expression(default, scope)
            inner = scope.child()
            for arg in node.args:
                inner.names[arg.name] = ANY
            self._statements(node.body, inner)
        elif isinstance(node, nodes.With):
            inner = scope.child()
            for target, value in zip(node.targets, node.values, strict=True):
                self._bind(target, self._expression(value, scope), inner)
            self._statements(node.body, inner)
        elif isinstance(node, nodes.FilterBlock):
            self._statements(node.body, scope.child())
            self._expression(node.filter, scope)
        elif isinstance(node, nodes.Block):
            inner = scope.child()
            inner.names["super"] = ANY
            self._statements(node.body, inner)
        elif isinstance(node, nodes.Include):
            self._other_template(node, scope, with_context=node.with_context)
        elif isinstance(node, nodes.Extends):
            self._other_template(node, scope, with_context=True)
        elif isinstance(node, nodes.Import):
            self._other_template(node, scope, with_context=node.with_context)
            scope.assign(node.target, ANY)
        elif isinstance(node, nodes.FromImport):
            self._other_template(node, scope, with_context=node.with_context)
            for imported in node.names:
                scope.assign(imported[1] if isinstance(imported, tuple) else imported, ANY)
        else:  # ExprStmt, Scope, eval-context modifiers, break, continue …
            for part in node.iter_child_nodes():
                if isinstance(part, nodes.Expr):
                    self._expression(part, scope)
                else:
                    self._statement(part, scope)

    def _if(self, node: nodes.If, scope: _Scope) -> None:
        # Jinja keeps `elif`s as a flat list of `If`s beside one `else`: each branch
        # runs only where the tests before it were false.
        rest = scope
        for branch in (node, *node.elif_):
            self._expression(branch.test, rest)
            when_true, when_false = _guards(branch.test)
            self._statements(branch.body, rest.child(when_true, shares=True))
            rest = rest.child(when_false, shares=True)
        self._statements(node.else_, rest)

    def _for(self, node: nodes.For, scope: _Scope) -> None:
        items = self._expression(node.iter, scope)
        item: Shape = ANY
        if isinstance(items, ListOf):
            item = items.item
        elif isinstance(items, Table) or items == TEXT:
            item = TEXT  # a mapping's keys, a string's characters
        inner = scope.child()
        self._bind(node.target, item, inner)
        if node.test is not None:  # the loop's `if` filter sees the item, not `loop`
            self._expression(node.test, inner)
        inner.names["loop"] = LOOP
        self._statements(node.body, inner)
        self._statements(node.else_, scope.child())

    def _bind(self, target: nodes.Node, shape: Shape, scope: _Scope) -> None:
        if isinstance(target, nodes.Name):
            scope.assign(target.name, shape)
        elif isinstance(target, nodes.Tuple):
            for item in target.items:
                self._bind(item, ANY, scope)
        elif isinstance(target, nodes.NSRef):
            self._name(target.name, target.lineno, scope)

    # -- expressions ---------------------------------------------------------------------

    def _expression(  # noqa: C901 - one dispatch
        self, node: nodes.Node | None, scope: _Scope, *, optional: bool = False
    ) -> Shape:
        """Check `node` and return the shape of its value. `optional`: its last lookup
        may fail (under `is defined` or `| default`)."""
        if node is None or isinstance(node, nodes.TemplateData):
            return ANY
        if isinstance(node, nodes.Name):
            return self._name(node.name, node.lineno, scope, optional=optional)
        if isinstance(node, nodes.Const):
            value = node.value
            return Value(type(value)) if isinstance(value, str | int | float | bool) else ANY
        if isinstance(node, nodes.Getattr):
            base = self._expression(node.node, scope)
            return self._lookup(base, node.attr, node, scope, optional=optional)
        if isinstance(node, nodes.Getitem):
            base = self._expression(node.node, scope)
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                return self._lookup(base, node.arg.value, node, scope, optional=optional)
            self._expression(node.arg, scope)
            if isinstance(node.arg, nodes.Slice):
                return base
            return base.item if isinstance(base, ListOf) else ANY
        if isinstance(node, nodes.Filter):
            return self._filter(node, scope)
        if isinstance(node, nodes.Test):
            if node.name not in self._env.tests:
                hint = did_you_mean(node.name, self._env.tests)
                self._report(f"unknown test '{node.name}'{hint}", node.lineno)
            self._expression(node.node, scope, optional=node.name in ("defined", "undefined"))
            self._arguments(node, scope)
            return Value(bool)
        if isinstance(node, nodes.CondExpr):
            self._expression(node.test, scope)
            when_true, when_false = _guards(node.test)
            first = self._expression(node.expr1, scope.child(when_true))
            second = self._expression(node.expr2, scope.child(when_false))
            return first if first == second else ANY
        if isinstance(node, nodes.And):
            self._expression(node.left, scope)
            self._expression(node.right, scope.child(_guards(node.left)[0]))
            return ANY
        if isinstance(node, nodes.Or):
            self._expression(node.left, scope)
            self._expression(node.right, scope.child(_guards(node.left)[1]))
            return ANY
        if isinstance(node, nodes.Call):
            self._expression(node.node, scope)
            self._arguments(node, scope)
            return ANY
        if isinstance(node, nodes.NSRef):
            self._name(node.name, node.lineno, scope)
            return ANY
        if isinstance(node, nodes.List):
            for child in node.items:
                self._expression(child, scope)
            return ListOf(ANY)
        if isinstance(node, nodes.Concat):
            for child in node.nodes:
                self._expression(child, scope)
            return TEXT
        for part in node.iter_child_nodes():  # operators, tuples, dicts, slices …
            self._expression(part, scope)
        return ANY

    def _arguments(self, node: nodes.Call | nodes.Filter | nodes.Test, scope: _Scope) -> None:
        for arg in node.args:
            self._expression(arg, scope)
        for keyword in node.kwargs:
            self._expression(keyword.value, scope)
        self._expression(node.dyn_args, scope)
        self._expression(node.dyn_kwargs, scope)

    def _filter(self, node: nodes.Filter, scope: _Scope) -> Shape:
        name = node.name
        if name not in self._env.filters:
            self._report(
                f"unknown filter '{name}'{did_you_mean(name, self._env.filters)}", node.lineno
            )
        base = self._expression(node.node, scope, optional=name in ("default", "d"))
        self._arguments(node, scope)
        if not isinstance(base, ListOf):
            return base if name in ("default", "d") else ANY
        attribute = _attribute_argument(node)
        if attribute is not None and isinstance(base.item, Record | Table):
            first = attribute.split(".", 1)[0]
            if not first.isdigit():
                field_shape = self._lookup(base.item, first, node, scope)
                if name == "map" and "." not in attribute:
                    return ListOf(field_shape)
        if name in ("first", "last", "random"):
            return base.item
        if name in (
            "sort",
            "reverse",
            "list",
            "unique",
            "selectattr",
            "rejectattr",
            "select",
            "reject",
        ):
            return base
        return ANY

    def _name(self, name: str, line: int, scope: _Scope, *, optional: bool = False) -> Shape:
        shape = scope.lookup(name)
        if shape is not None:
            return shape
        if name in self._env.globals or name == "self" or optional or scope.guarded((name,)):
            return ANY
        message = f"'{name}' is undefined"
        if name == "agent":
            message += f": only templates named {HANDOFF_PREFIX}…{SUFFIX} know the agent"
        elif name in self._context.names(HANDOFF_PREFIX):
            message += (
                " here: imported templates see only their own names; import it 'with context'"
            )
        else:
            message += did_you_mean(name, scope.visible() | set(self._env.globals))
        self._report(message, line)
        return ANY

    def _lookup(
        self, base: Shape, name: str, node: nodes.Node, scope: _Scope, *, optional: bool = False
    ) -> Shape:
        """`base.name` (or `base["name"]`): the shape it has, or a report of why it has none."""
        if isinstance(base, Unknown):
            return ANY
        if name.startswith("_"):
            self._report(
                f"'{name}' is not allowed: the sandbox blocks names starting with '_'", node.lineno
            )
            return ANY
        message = None
        if isinstance(base, Record):
            if name in base.fields:
                return base.fields[name]
            fields = ", ".join(base.fields)
            message = (
                f"{base.label} has no field '{name}'{did_you_mean(name, base.fields)}; "
                f"its fields: {fields}"
            )
        elif isinstance(base, Table):
            if name in base.keys:
                return base.keys[name]
            if hasattr(dict, name):
                return ANY
            keys = ", ".join(base.keys)
            where = f"{base.source} has: {keys}" if keys else f"{base.source} is empty"
            message = f"{base.label} has no key '{name}'{did_you_mean(name, base.keys)}; {where}"
        elif isinstance(base, ListOf):
            if hasattr(list, name) or hasattr(tuple, name):
                return ANY
            owner = _path_of(node.node) if isinstance(node, nodes.Getattr | nodes.Getitem) else None
            what = f"'{'.'.join(owner)}' is a list" if owner else "a list"
            message = f"{what} and has no attribute '{name}': loop over it with {{% for %}}"
        elif isinstance(base, Value):
            if hasattr(base.type, name):
                return ANY
            public = [a for a in dir(base.type) if not a.startswith("_")]
            message = (
                f"a {base.type.__name__} value has no attribute '{name}'"
                f"{did_you_mean(name, public)}"
            )
        path = _path_of(node)
        if message is None or optional or (path is not None and scope.guarded(path)):
            return ANY
        self._report(message, node.lineno)
        return ANY

    def _report(self, message: str, line: int | None, *, file: str | None = None) -> None:
        path = self._templates.shown(self._templates.folder / (file or self._file))
        problem = Problem(path, message, line)
        self._problems.setdefault(str(problem), problem)


def _attribute_argument(node: nodes.Filter) -> str | None:
    """The attribute a filter reads from each item: `map(attribute='x')`, `selectattr('x')`."""
    for keyword in node.kwargs:
        if keyword.key == "attribute" and isinstance(keyword.value, nodes.Const):
            return str(keyword.value.value)
    if node.name in ("selectattr", "rejectattr", "groupby") and node.args:
        first = node.args[0]
        if isinstance(first, nodes.Const) and isinstance(first.value, str):
            return first.value
    return None


def _path_of(node: nodes.Node) -> Path_ | None:
    """`vars.company` → ("vars", "company"); None for anything but a chain of lookups."""
    parts: list[str] = []
    while True:
        if isinstance(node, nodes.Name):
            return (node.name, *reversed(parts))
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            parts.append(node.arg.value)
        else:
            return None
        node = node.node


def _guards(test: nodes.Node) -> tuple[frozenset[Path_], frozenset[Path_]]:
    """The lookups a test proves defined: where it is true, and where it is false.

    `x is defined and y is defined` guards both when true; `x is undefined` (or
    `not x is defined`) guards `x` when false, in the `else`.
    """
    if isinstance(test, nodes.Test) and test.name in ("defined", "undefined"):
        path = _path_of(test.node)
        guarded = frozenset([path]) if path is not None else frozenset()
        return (guarded, frozenset()) if test.name == "defined" else (frozenset(), guarded)
    if isinstance(test, nodes.Not):
        when_true, when_false = _guards(test.node)
        return when_false, when_true
    if isinstance(test, nodes.And):
        return _guards(test.left)[0] | _guards(test.right)[0], frozenset()
    if isinstance(test, nodes.Or):
        return frozenset(), _guards(test.left)[1] | _guards(test.right)[1]
    return frozenset(), frozenset()
