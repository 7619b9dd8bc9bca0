// prefault.py: the pages a forked child wrote are found, and populating them in a later child
// makes them its own before it writes to them (read back from /proc/self/pagemap).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pythonJson } from '../helpers/python.js';

const PROBE = String.raw`
import ctypes, json, os, struct
from _damnit_shim import prefault

PAGE = prefault.PAGE
buffer = bytearray(b"x" * (PAGE * 32))
base = ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer))
first = (base + PAGE - 1) // PAGE * PAGE  # the first whole page of the buffer
target = first + 5 * PAGE

def owned(address):
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(address // PAGE * 8)
        entry = struct.unpack("<Q", f.read(8))[0]
    return bool(entry >> 63 & 1 and entry >> 56 & 1)

def in_child(work):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, json.dumps(work()).encode())
        os._exit(0)
    os.close(w)
    data = os.read(r, 1 << 20)
    os.waitpid(pid, 0)
    return json.loads(data)

def writer():
    buffer[target - base] = 65
    return [[s, l] for s, l in prefault.written_ranges()]

noted = in_child(writer)

def populated():
    before = owned(target)
    accepted = prefault.populate([tuple(r) for r in noted])
    return {"before": before, "after": owned(target), "neighbour": owned(target + PAGE),
            "accepted": accepted, "value": buffer[target - base]}

print(json.dumps({
    "noted": any(s <= target < s + l for s, l in noted),
    "neighbour_noted": any(s <= target + PAGE < s + l for s, l in noted),
    "child": in_child(populated),
}))
`;

describe('prefault', () => {
  test("a child's written page is noted; a later child owns it after populate, content unchanged", async () => {
    const result = await pythonJson<{
      noted: boolean;
      neighbour_noted: boolean;
      child: { before: boolean; after: boolean; neighbour: boolean; accepted: number; value: number };
    }>(PROBE);
    assert.equal(result.noted, true, 'the page the child wrote');
    assert.equal(result.neighbour_noted, false, 'a page it only shared');
    assert.equal(result.child.before, false, 'shared with the parent after the fork');
    assert.equal(result.child.after, true, 'its own copy after populate');
    assert.equal(result.child.neighbour, false);
    assert.ok(result.child.accepted > 0);
    assert.equal(result.child.value, 'x'.charCodeAt(0), "populate copies; it writes nothing (the first child's write was its own)");
  });
});
