// @Group through the shim: each scenario of the reference's tests/test_ctx_groups.py, loaded with
// `describe` (names, titles, tags, dependencies, load errors at their line) and run with
// `run --mock` (values, skips). Each test names the reference test it mirrors.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { ContextMessage, LoadErrorMessage, VariableInfo } from '../../src/context/protocol.js';
import { makeTempDir } from '../helpers/cli.js';
import {
  describeShim,
  loaded,
  loadFailed,
  result,
  runOk,
  writeContext,
  type RunOutput,
} from './runner-helpers.js';

const tmp = makeTempDir('damnit-groups-');
after(() => tmp.cleanup());

const HEADER = 'from damnit_ctx import Variable, Group\n';
let counter = 0;

function contextFile(source: string): string {
  counter += 1;
  return writeContext(path.join(tmp.dir, `ctx${counter}`), HEADER + source);
}

async function load(source: string): Promise<Map<string, VariableInfo>> {
  const context: ContextMessage = loaded(await describeShim(contextFile(source)));
  return new Map(context.variables.map((v) => [v.name, v]));
}

async function loadError(source: string): Promise<LoadErrorMessage> {
  return loadFailed(await describeShim(contextFile(source)));
}

/** Loads and runs on a mock run. */
async function run(source: string): Promise<{ vars: Map<string, VariableInfo>; out: RunOutput }> {
  const file = contextFile(source);
  const context = loaded(await describeShim(file));
  return { vars: new Map(context.variables.map((v) => [v.name, v])), out: await runOk(file) };
}

function valueOf(out: RunOutput, name: string): number {
  const value = result(out, name).value;
  assert.ok(value && (value.t === 'int' || value.t === 'float'), `${name}: ${JSON.stringify(value)}`);
  return Number(value.v);
}

function errorOf(out: RunOutput, name: string): { error: unknown; error_cls: unknown } {
  const attributes = result(out, name).attributes ?? {};
  return { error: attributes.error, error_cls: attributes.error_cls };
}

/** The resolved `var#` annotation of each parameter, as the reference's arg_dependencies(). */
function argDependencies(vars: Map<string, VariableInfo>, name: string): Record<string, string> {
  const v = vars.get(name);
  assert.ok(v, `no variable ${name}; have ${[...vars.keys()].join(', ')}`);
  return Object.fromEntries(
    v.parameters
      .filter((p) => p.annotation?.startsWith('var#'))
      .map((p) => [p.name, (p.annotation ?? '').slice('var#'.length)]),
  );
}

const names = (vars: Map<string, VariableInfo>): string[] => [...vars.keys()].sort();

describe('groups: names, titles and tags', () => {
  // test_group_variable_reference
  test('group.var names the instance copy once the group is named after its global', async () => {
    const vars = await load(`
@Variable
def var(run):
    return 42

@Group
class Grp:
    ref: Variable = None
    grp_ref: Group = None

    @Variable(tags='G!')
    def grp_var(self, run):
        return 1 / 42

    @Variable
    def uses(self, run, other: "self#grp_ref.grp_var" = 0):
        return other

group1 = Grp()
group2 = Grp(ref=var, grp_ref=group1)
`);
    assert.deepEqual(names(vars), [
      'group1.__missing__.grp_ref.grp_var',
      'group1.grp_var',
      'group1.uses',
      'group2.grp_var',
      'group2.uses',
      'var',
    ]);
    assert.deepEqual(argDependencies(vars, 'group2.uses'), { other: 'group1.grp_var' });
    assert.deepEqual(vars.get('group1.grp_var')?.tags, ['G!']);
  });

  // test_group_expands_variables_and_prefixes
  test('a group variable is <group>.<method>, titled <group title>/<title>, tags merged', async () => {
    const vars = await load(`
@Group(tags=["XGM"])
class XGM:
    device_name: str

    @Variable(title="Pulse Energy", tags=["Energy"])
    def pulse_energy(self, run):
        return 1

xgm = XGM(name="xgm_sa2", title="XGM Diag", device_name="SA2_XTD6_XGM/XGM/DOOCS")
`);
    const v = vars.get('xgm_sa2.pulse_energy');
    assert.equal(v?.title, 'XGM Diag/Pulse Energy');
    assert.deepEqual(v?.tags, ['Energy', 'XGM']);
  });

  test("a group variable's description is its method's docstring, or none", async () => {
    const vars = await load(`
@Group
class XGM:
    @Variable(title="Energy")
    def energy(self, run):
        """Pulse energy per train."""
        return 1

    @Variable(title="Plain")
    def plain(self, run):
        return 2

xgm = XGM()
`);
    assert.equal(vars.get('xgm.energy')?.description, 'Pulse energy per train.');
    assert.equal(vars.get('xgm.plain')?.description, null);
  });

  // test_group_name_from_context_assignment
  test('a group without a name takes the name of its global', async () => {
    const { vars, out } = await run(`
@Group
class G:
    @Variable
    def val(self, run):
        return 3

group_name = G()
`);
    assert.equal(vars.get('group_name.val')?.title, 'group_name/val');
    assert.equal(valueOf(out, 'group_name.val'), 3);
  });

  // test_group_name_instance
  test('an explicit name wins over the global', async () => {
    const { vars, out } = await run(`
@Group
class G:
    @Variable
    def val(self, run):
        return 5

g = G(name="instance")
`);
    assert.deepEqual(names(vars), ['instance.val']);
    assert.equal(vars.get('instance.val')?.title, 'instance/val');
    assert.equal(valueOf(out, 'instance.val'), 5);
  });

  // test_nested_group_name_assignment
  test('a nested group is named <parent>.<field>; an explicit dotted name is kept', async () => {
    const { vars, out } = await run(`
@Group
class Inner:
    @Variable
    def val(self, run):
        return 1

@Group
class Outer:
    inner: Inner

    @Variable
    def out(self, run, val: "self#inner.val"):
        return val + 1

outer = Outer(inner=Inner())

@Group
class G:
    @Variable
    def val(self, run):
        return 5

g = G(name="explicit.dot")
`);
    assert.deepEqual(argDependencies(vars, 'outer.out'), { val: 'outer.inner.val' });
    assert.equal(vars.get('outer.inner.val')?.title, 'outer/inner/val');
    assert.equal(vars.get('explicit.dot.val')?.title, 'explicit.dot/val');
    assert.equal(valueOf(out, 'outer.inner.val'), 1);
    assert.equal(valueOf(out, 'outer.out'), 2);
    assert.equal(valueOf(out, 'explicit.dot.val'), 5);
  });

  // test_group_name_shortest_path
  test('the shortest path names a group: a global beats a field', async () => {
    const vars = await load(`
@Group
class Inner:
    @Variable
    def val(self, run):
        return 1

@Group
class Outer:
    inner: Inner

    @Variable
    def out(self, run, val: "self#inner.val"):
        return val + 1

inner = Inner()
outer = Outer(inner=inner)
`);
    assert.deepEqual(names(vars), ['inner.val', 'outer.out']);
    assert.deepEqual(argDependencies(vars, 'outer.out'), { val: 'inner.val' });
  });

  // test_group_nested_name_uses_explicit_parent_prefix
  test("a nested group's name starts with its parent's explicit name", async () => {
    const vars = await load(`
@Group
class Inner:
    @Variable
    def val(self, run):
        return 1

@Group
class Outer:
    inner: Inner

    @Variable
    def out(self, run, val: "self#inner.val"):
        return val + 1

outer = Outer(name="explicit", inner=Inner())
`);
    assert.deepEqual(names(vars), ['explicit.inner.val', 'explicit.out']);
    assert.deepEqual(argDependencies(vars, 'explicit.out'), { val: 'explicit.inner.val' });
  });

  // test_group_explicit_child_name_overrides_nested_assignment
  test("a nested group's explicit name wins over its path", async () => {
    const { vars, out } = await run(`
@Group
class Inner:
    @Variable
    def val(self, run):
        return 1

@Group
class Outer:
    inner: Inner

    @Variable
    def out(self, run, val: "self#inner.val"):
        return val + 1

inner = Inner(name="custom")
outer = Outer(inner=inner)
`);
    assert.deepEqual(names(vars), ['custom.val', 'outer.out']);
    assert.deepEqual(argDependencies(vars, 'outer.out'), { val: 'custom.val' });
    assert.equal(valueOf(out, 'custom.val'), 1);
    assert.equal(valueOf(out, 'outer.out'), 2);
  });

  // test_group_nested_shortest_path_prefers_shallower
  test('a group reachable at two depths takes the shallower name', async () => {
    const vars = await load(`
@Group
class Inner:
    @Variable
    def val(self, run):
        return 1

@Group
class Mid:
    inner: Inner

@Group
class Outer:
    mid: Mid

@Group
class Alt:
    inner: Inner

    @Variable
    def out(self, run, val: "self#inner.val"):
        return val + 1

shared = Inner()
outer = Outer(mid=Mid(inner=shared))
alt = Alt(inner=shared)
`);
    assert.deepEqual(names(vars), ['alt.out', 'shared.val']);
    assert.deepEqual(argDependencies(vars, 'alt.out'), { val: 'shared.val' });
  });

  // test_group_explicit_name_avoids_ambiguity
  test('explicit names let one class be nested under several groups', async () => {
    const vars = await load(`
@Group
class Inner:
    @Variable
    def val(self, run):
        return 1

@Group
class Outer:
    inner: Inner

    @Variable
    def out(self, run, val: "self#inner.val"):
        return val + 1

shared = Inner(name="shared")
outer1 = Outer(inner=shared)
outer2 = Outer(inner=Inner(name="inner2"))
outer3 = Outer(inner=Inner())
`);
    assert.deepEqual(argDependencies(vars, 'outer1.out'), { val: 'shared.val' });
    assert.deepEqual(argDependencies(vars, 'outer2.out'), { val: 'inner2.val' });
    assert.deepEqual(argDependencies(vars, 'outer3.out'), { val: 'outer3.inner.val' });
  });

  // test_group_inheritance_and_reset
  test('subclasses inherit variables and the decorator tags, unless they give their own', async () => {
    const { vars, out } = await run(`
@Group(tags=["BaseTag"])
class Base:
    @Variable(title="BaseVar")
    def base(self, run):
        return 5

@Group
class Derived(Base):
    @Variable(title="ChildVar")
    def child(self, run, base: "self#base"):
        return base + 1

@Group(tags=["AltTag"])
class DerivedAlt(Base):
    @Variable(title="AltVar")
    def alt(self, run):
        return 7

derived = Derived(name="derived")
alt = DerivedAlt(name="alt", title="Alt")
`);
    assert.deepEqual(
      [...vars.values()].map((v) => [v.name, v.title, v.tags]).sort(),
      [
        ['alt.alt', 'Alt/AltVar', ['AltTag']],
        ['alt.base', 'Alt/BaseVar', ['AltTag']],
        ['derived.base', 'derived/BaseVar', ['BaseTag']],
        ['derived.child', 'derived/ChildVar', ['BaseTag']],
      ],
    );
    assert.deepEqual(
      ['derived.base', 'derived.child', 'alt.base', 'alt.alt'].map((n) => valueOf(out, n)),
      [5, 6, 5, 7],
    );
  });

  // test_group_inherited_dataclass_fields
  test("a subclass has its base's fields", async () => {
    const { out } = await run(`
@Group
class A:
    label: str

    @Variable
    def label_len(self, run):
        return len(self.label)

@Group
class B(A):
    age: int

    @Variable
    def age_plus(self, run):
        return self.age + 1

b = B(label="asdf", age=12)
`);
    assert.equal(valueOf(out, 'b.label_len'), 4);
    assert.equal(valueOf(out, 'b.age_plus'), 13);
  });

  // test_group_decorated_subclass_non_default_field
  test('a field without default may follow inherited fields with one (keyword-only fields)', async () => {
    const { out } = await run(`
@Group
class A:
    base: int = 1

    @Variable
    def base_val(self, run):
        return self.base

@Group
class B(A):
    value: int

    @Variable
    def combined(self, run):
        return self.base + self.value

b = B(value=3)
`);
    assert.equal(valueOf(out, 'b.base_val'), 1);
    assert.equal(valueOf(out, 'b.combined'), 4);
  });
});

describe('groups: dependencies', () => {
  // test_group_linking_resolves_dependencies
  test('self# through a linked group names its variable', async () => {
    const vars = await load(`
@Group
class Inner:
    @Variable
    def energy(self, run):
        return 1

@Group
class Outer:
    inner: Inner

    @Variable
    def scaled(self, run, energy: "self#inner.energy", factor: int = 2):
        return energy * factor

outer = Outer(name="outer", inner=Inner(name="blah"))
`);
    assert.deepEqual(names(vars), ['blah.energy', 'outer.scaled']);
    assert.deepEqual(argDependencies(vars, 'outer.scaled'), { energy: 'blah.energy' });
    assert.deepEqual(vars.get('outer.scaled')?.dependencies, ['blah.energy']);
  });

  // test_group_glob
  test('a glob in self# matches the linked group variables; a missing component gives no value', async () => {
    const first = await run(`
@Group
class Other:
    @Variable
    def var_a(self, run):
        return 1

    @Variable
    def var_b(self, run):
        return 2

@Group
class G:
    other: Other

    @Variable
    def total(self, run, data: "self#other.var_*"):
        return sum(data.values())

g = G(other=Other(name="blah"))
`);
    assert.deepEqual(argDependencies(first.vars, 'g.total'), { data: 'blah.var_*' });
    assert.deepEqual(names(first.vars), ['blah.var_a', 'blah.var_b', 'g.total']);
    assert.equal(valueOf(first.out, 'g.total'), 3);

    const second = await run(`
@Group
class Upstream:
    @Variable
    def x(self, run):
        return 1

@Group
class G:
    upstream: Upstream | None = None

    @Variable
    def var_a(self, run, x: "self#upstream.x"):
        return x + 1

    @Variable
    def var_b(self, run, x: "self#upstream.x"):
        return x + 2

    @Variable
    def total(self, run, data: "self#var_*"):
        return sum(data.values())

g = G()
g2 = G(upstream=Upstream(name="u"))
`);
    assert.deepEqual(argDependencies(second.vars, 'g2.total'), { data: 'g2.var_*' });
    assert.equal(errorOf(second.out, 'g.total').error_cls, 'Skip');
    assert.equal(valueOf(second.out, 'g2.total'), 5);
  });

  // test_group_missing_group_with_glob_pattern
  test('the placeholder of a missing component has the glob characters replaced', async () => {
    const vars = await load(`
@Group
class Other:
    @Variable
    def var_a(self, run):
        return 1

@Group
class G:
    other: Other | None = None

    @Variable
    def total(self, run, data: "self#other.var_*"):
        return sum(data.values())

g = G(name="g")
`);
    const placeholder = vars.get('g.__missing__.other.var__');
    assert.ok(placeholder, names(vars).join(', '));
    assert.equal(placeholder.transient, true);
  });

  // test_group_variable_field_linking
  test('a field holding a Variable is a self# dependency', async () => {
    const { vars, out } = await run(`
@Variable
def base(run):
    return 1

@Group
class A:
    v: Variable

    @Variable
    def asdf(self, run, data: "self#v"):
        return data + 1

a1 = A(name="a1", v=base)
a2 = A(name="a2", v=a1.asdf)
`);
    assert.deepEqual(['base', 'a1.asdf', 'a2.asdf'].map((n) => valueOf(out, n)), [1, 2, 3]);
    assert.deepEqual(argDependencies(vars, 'a1.asdf'), { data: 'base' });
    assert.deepEqual(argDependencies(vars, 'a2.asdf'), { data: 'a1.asdf' });
  });

  // test_group_nested_variable_field_chain
  test('self# paths through several linked groups', async () => {
    const { vars, out } = await run(`
@Variable
def base(run):
    return 5

@Group
class Leaf:
    linked_base: Variable
    scale: int = 2

    @Variable
    def scaled(self, run, value: "self#linked_base"):
        return value * self.scale

@Group
class Mid:
    leaf: Leaf
    offset: int = 4

    @Variable
    def total(self, run, value: "self#leaf.scaled"):
        return value + self.offset

@Group
class Outer:
    mid: Mid
    factor: int = 2

    @Variable
    def final(self, run, value: "self#mid.total"):
        return value * self.factor

    @Variable
    def extra(self, run, value: "self#mid.leaf.linked_base"):
        return 2 * value

leaf = Leaf(name="leaf", linked_base=base, scale=2)
mid = Mid(name="mid", leaf=leaf, offset=4)
outer = Outer(name="outer", mid=mid, factor=2)
`);
    assert.deepEqual(
      ['base', 'leaf.scaled', 'mid.total', 'outer.final', 'outer.extra'].map((n) => valueOf(out, n)),
      [5, 10, 14, 28, 10],
    );
    assert.deepEqual(argDependencies(vars, 'outer.extra'), { value: 'base' });
    assert.deepEqual(argDependencies(vars, 'mid.total'), { value: 'leaf.scaled' });
  });

  // test_group_execute_intra_dependencies_and_overrides
  test('instance fields, titles and tags override the class defaults', async () => {
    const { vars, out } = await run(`
@Group(tags=["Default"])
class G:
    offset: float = 0.0

    @Variable(title="Base", tags=["Base"])
    def base(self, run):
        return 10

    @Variable(title="Adjusted")
    def adjusted(self, run, base: "self#base"):
        return base + self.offset

g = G(name="g", title="MyDiag", offset=5, tags="Override")
`);
    assert.equal(valueOf(out, 'g.base'), 10);
    assert.equal(valueOf(out, 'g.adjusted'), 15);
    assert.deepEqual(argDependencies(vars, 'g.adjusted'), { base: 'g.base' });
    assert.equal(vars.get('g.adjusted')?.title, 'MyDiag/Adjusted');
    assert.deepEqual(vars.get('g.base')?.tags, ['Base', 'Override']);
    assert.deepEqual(vars.get('g.adjusted')?.tags, ['Override']);
  });

  // test_group_linking_exec_and_dependency_paths
  test('sep joins titles; a linked group is computed once, as itself', async () => {
    const { vars, out } = await run(`
@Group
class XGM:
    offset: float = 0.0

    @Variable(title="Energy")
    def energy(self, run):
        return 10

    @Variable(title="Corrected")
    def corrected(self, run, energy: "self#energy"):
        return energy + self.offset

@Group
class MID:
    xgm: XGM
    factor: float = 2.0

    @Variable(title="Scaled")
    def scaled(self, run, energy: "self#xgm.corrected"):
        return energy * self.factor

xgm_sa2 = XGM(name="xgm_sa2", title="XGM", offset=1.5, tags="XGM")
mid = MID(name="mid", title="MID", sep=" | ", xgm=xgm_sa2, factor=3)
`);
    assert.deepEqual(names(vars), ['mid.scaled', 'xgm_sa2.corrected', 'xgm_sa2.energy']);
    assert.equal(valueOf(out, 'xgm_sa2.energy'), 10);
    assert.equal(valueOf(out, 'xgm_sa2.corrected'), 11.5);
    assert.equal(valueOf(out, 'mid.scaled'), 34.5);
    assert.deepEqual(argDependencies(vars, 'mid.scaled'), { energy: 'xgm_sa2.corrected' });
    assert.equal(vars.get('mid.scaled')?.title, 'MID | Scaled');
  });

  // test_group_optional_component_skips_missing_dependency
  test('a missing component: dependants without default are skipped, defaults are used', async () => {
    const { vars, out } = await run(`
@Variable
def var(run):
    return 1

@Group
class A:
    @Variable
    def var(self, run):
        return 41

@Group
class B:
    upstream: A | None = None
    other_var: Variable | None = None

    @Variable
    def needs_upstream(self, run, value: "self#upstream.var"):
        return value + 1

    @Variable
    def optional_upstream(self, run, value: "self#upstream.var" = 42, other_value: "self#other_var" = -1):
        return other_value * (value + 1)

b = B(name="b")
`);
    assert.deepEqual(argDependencies(vars, 'b.optional_upstream'), {
      value: 'b.__missing__.upstream.var',
      other_value: 'b.__missing__.other_var',
    });
    assert.deepEqual(errorOf(out, 'b.needs_upstream'), {
      error: "Dependencies returned no data:\n- 'b.__missing__.upstream.var'",
      error_cls: 'Skip',
    });
    assert.equal(valueOf(out, 'b.optional_upstream'), -43);
    assert.equal(out.results.has('b.__missing__.upstream.var'), false, 'placeholders are transient');
  });

  // test_group_optional_component_cascades_drop
  test("a missing component's dependants are skipped in a chain; defaults stop the chain", async () => {
    const first = await run(`
from typing import Optional

@Group
class Upstream:
    @Variable
    def value(self, run):
        return 1

@Group
class Outer:
    upstream: Optional[Upstream] = None

    @Variable
    def needs_upstream(self, run, value: "self#upstream.value"):
        return value + 1

    @Variable
    def depends_on_needs(self, run, value: "self#needs_upstream"):
        return value + 1

outer = Outer(name="outer")
`);
    assert.equal(errorOf(first.out, 'outer.needs_upstream').error_cls, 'Skip');
    assert.equal(errorOf(first.out, 'outer.depends_on_needs').error_cls, 'Skip');

    const second = await run(`
@Group
class Upstream:
    @Variable
    def var(self, run):
        return 100

@Group
class G:
    upstream: Upstream | None = None

    @Variable
    def d(self, run, v: "self#c"):
        return v * 2

    @Variable
    def c(self, run, v: "self#a" = 5):
        return v + 1

    @Variable
    def e(self, run, base: "self#base", v: "self#a" = 10):
        return base + v

    @Variable
    def required_from_b(self, run, v: "self#b"):
        return v * 10

    @Variable
    def optional_from_b(self, run, v: "self#b" = 3):
        return v * 10

    @Variable
    def b(self, run, v: "self#a"):
        return v + 1

    @Variable
    def a(self, run, v: "self#upstream.var"):
        return v + 1

    @Variable
    def base(self, run):
        return 2

g = G(name="grp")
`);
    for (const name of ['grp.a', 'grp.b', 'grp.required_from_b']) {
      assert.equal(errorOf(second.out, name).error_cls, 'Skip', name);
    }
    assert.deepEqual(argDependencies(second.vars, 'grp.c'), { v: 'grp.a' });
    assert.deepEqual(argDependencies(second.vars, 'grp.e'), { base: 'grp.base', v: 'grp.a' });
    assert.deepEqual(
      ['grp.c', 'grp.optional_from_b', 'grp.base', 'grp.d', 'grp.e'].map((n) => valueOf(second.out, n)),
      [6, 30, 2, 12, 12],
    );
  });
});

describe('groups: load errors at their line', () => {
  const cases: { mirrors: string; name: string; source: string; kind: string; message: string; line: number; column: number }[] = [
    {
      mirrors: 'test_group_glob_only_allowed_on_leaf',
      name: 'a glob in the middle of a self# path',
      source: `
@Group
class Other:
    @Variable
    def var(self, run):
        return 1

@Group
class G:
    other: Other

    @Variable
    def out(self, run, v: "self#other*.var"):
        return v

g = G(other=Other(name="other"))
`,
      kind: 'context',
      message: "AttributeError: 'G' object has no attribute 'other*'",
      line: 14,
      column: 5,
    },
    {
      mirrors: 'test_group_invalid_self_annotation',
      name: 'self# through a field that does not exist',
      source: `
@Group
class G:
    @Variable
    def out(self, run, v: "self#no_such_group.x"):
        return v

g = G()
`,
      kind: 'context',
      message: "AttributeError: 'G' object has no attribute 'no_such_group'",
      line: 6,
      column: 5,
    },
    {
      mirrors: 'test_group_invalid_self_annotation',
      name: 'self# to a field that is no Variable',
      source: `
@Group
class G:
    blah: int = 5

    @Variable
    def out(self, run, v: "self#blah"):
        return v ** 2

g = G()
`,
      kind: 'context',
      message: "GroupError: Attribute 'blah' on group 'g' is of type 'int', but a Variable is required for a self# dependency.",
      line: 8,
      column: 5,
    },
    {
      mirrors: 'test_group_nested_ambiguous_names_at_same_depth_raises',
      name: 'one nested group under two paths of the same depth',
      source: `
@Group
class Inner:
    @Variable
    def val(self, run):
        return 1

@Group
class Outer:
    inner: Inner

    @Variable
    def out(self, run, val: "self#inner.val"):
        return val + 1

__shared = Inner()
outer1 = Outer(inner=__shared)
outer2 = Outer(inner=__shared)
`,
      kind: 'context',
      message:
        "GroupError: Group instance of 'Inner' is assigned to multiple names ['outer1.inner', 'outer2.inner'] " +
        'without an explicit name.',
      line: 17,
      column: 12,
    },
    {
      mirrors: 'test_group_internal_cycle_raises_clear_error',
      name: 'a cycle inside a group',
      source: `
@Group
class G:
    @Variable
    def a(self, run, v: "self#b"):
        return v + 1

    @Variable
    def b(self, run, v: "self#a"):
        return v + 1

g = G(name="g")
`,
      kind: 'context',
      message: "These Variables have cyclical dependencies, which is not allowed: ['g.a', 'g.b', 'g.a']",
      line: 6,
      column: 5,
    },
    {
      mirrors: 'test_group_reserved_field_annotation_rejected',
      name: 'a reserved field',
      source: `
@Group
class Bad:
    name: str

    @Variable
    def val(self, run):
        return 1

bad = Bad(name="bad")
`,
      kind: 'exception',
      message: 'GroupError: Group classes cannot define reserved fields: name',
      line: 3,
      column: 2,
    },
    {
      mirrors: 'test_group_reserved_attribute_rejected',
      name: 'a reserved attribute',
      source: `
@Group
class Bad:
    tags = ["nope"]

    @Variable
    def val(self, run):
        return 1

bad = Bad(name="bad")
`,
      kind: 'exception',
      message: 'GroupError: Group classes cannot override reserved attributes: tags',
      line: 3,
      column: 2,
    },
    {
      mirrors: 'test_group_duplicate_names_raise',
      name: 'two groups of one name',
      source: `
@Group
class G:
    @Variable
    def val(self, run):
        return 1

g1 = G(name="dup")
g2 = G(name="dup")
`,
      kind: 'context',
      message: "GroupError: Group name 'dup' is used by multiple group instances",
      // The groups are taken last global first, as in the reference: g1 is the second one.
      line: 9,
      column: 6,
    },
    {
      mirrors: 'test_group_ambiguous_assignment_raises',
      name: 'one group under two globals',
      source: `
@Group
class G:
    @Variable
    def val(self, run):
        return 1

g = G()
alias = g
`,
      kind: 'context',
      message: "GroupError: Group instance of 'G' is assigned to multiple names ['alias', 'g'] without an explicit name.",
      line: 9,
      column: 5,
    },
    {
      mirrors: 'test_duplicate_group_var_name',
      name: "a group variable's name already taken",
      source: `
@Variable
def dummy(run):
    return 42
dummy.name = "g.var"

@Group
class G:
    @Variable
    def var(self, run):
        return -42

g = G()
`,
      kind: 'context',
      message: "GroupError: Duplicate variable name 'g.var' from group 'g'",
      line: 14,
      column: 5,
    },
  ];
  for (const c of cases) {
    // Each mirrors the reference test named in `mirrors`.
    test(`${c.name} (${c.mirrors})`, async () => {
      const error = await loadError(c.source);
      assert.deepEqual(
        error.problems.map((p) => [p.kind, p.message, p.line, p.column]),
        [[c.kind, c.message, c.line, c.column]],
      );
    });
  }
});
