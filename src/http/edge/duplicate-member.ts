// JSON.parse keeps the last of two members with the same name, so `{"sku":"A","sku":"B"}` would
// silently become an order for B. RFC 8259 section 4 leaves duplicates to the implementation and
// I-JSON (RFC 7493 section 2.3) forbids them: the service refuses them (issue #11). This scans
// text that JSON.parse has already accepted, so it only tracks strings and nesting; it is
// iterative (no recursion on deep nesting) and linear in the text.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
}

/** The first member name that appears twice in one object of valid JSON `text`, if any. */
export function duplicateMember(text: string): string | undefined {
  // One entry per open container: the names seen so far in an object, null for an array.
  const open: (Set<string> | null)[] = [];
  let i = 0;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) {
      let end = i + 1;
      let escaped = false;
      for (;;) {
        const inner = text.charCodeAt(end);
        if (inner === BACKSLASH) {
          escaped = true;
          end += 2;
        } else if (inner === QUOTE || Number.isNaN(inner)) {
          break;
        } else {
          end += 1;
        }
      }
      let next = end + 1;
      while (isSpace(text.charCodeAt(next))) next += 1;
      const members = open[open.length - 1];
      // In valid JSON a string followed by ':' is a member name.
      if (text.charCodeAt(next) === COLON && members) {
        const name = escaped
          ? (JSON.parse(text.slice(i, end + 1)) as string)
          : text.slice(i + 1, end);
        if (members.has(name)) return name;
        members.add(name);
        i = next + 1;
      } else {
        i = end + 1;
      }
      continue;
    }
    if (code === OPEN_OBJECT) open.push(new Set());
    else if (code === OPEN_ARRAY) open.push(null);
    else if (code === CLOSE_OBJECT || code === CLOSE_ARRAY) open.pop();
    i += 1;
  }
  return undefined;
}
