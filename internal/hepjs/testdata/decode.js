// Decodes HEP packets with sipcapture's hep-js, for package hepjs (internal/hepjs): an
// implementation independent of package hep. Input (the file named by the
// first argument): each captured datagram as a 4-byte big-endian length
// and its bytes. Output on stdout: one JSON line per datagram, hep-js's
// decapsulate result ({rcinfo, payload}), or null when it refused it.
'use strict';
const fs = require('fs');
const HEP = require('hep-js');

const data = fs.readFileSync(process.argv[2]);
let off = 0;
const out = [];
while (off + 4 <= data.length) {
  const n = data.readUInt32BE(off);
  off += 4;
  const pkt = data.subarray(off, off + n);
  off += n;
  const d = HEP.decapsulate(pkt);
  out.push(JSON.stringify(d || null));
}
if (off !== data.length) {
  console.error(`decode.js: ${data.length - off} trailing bytes`);
  process.exit(1);
}
process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
