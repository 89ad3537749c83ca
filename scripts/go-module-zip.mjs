#!/usr/bin/env node
// Writes the .zip of a Go module version, as a GOPROXY serves it (`<module>/@v/<version>.zip`),
// from a source folder: every regular file under SRC, stored (no compression) under the prefix
// `<module>@<version>/`, with fixed times, so the same source always gives the same bytes.
//
//   node scripts/go-module-zip.mjs SRC MODULE@VERSION OUT.zip
//
// No zip tool is needed (CI machines may lack one). The go command checks the module's go.sum
// hash over the names and contents of these files, never over the zip's bytes. Used by
// bench/lib/goModule.ts to complete the fixture proxy (test/fixtures/go/proxy) at test time.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';

/** Regular files under dir, as sorted forward-slash paths relative to it. */
function filesUnder(dir, rel = '') {
  const out = [];
  for (const entry of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const name = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...filesUnder(dir, name));
    else if (entry.isFile()) out.push(name);
    else throw new Error(`${name}: only regular files and directories may be in a module`);
  }
  return out.sort();
}

// 1980-01-01 00:00, the zip format's first representable time.
const DOS_TIME = 0;
const DOS_DATE = (1 << 5) | 1;
const UTF8_NAMES = 0x0800;
// Made by Unix (3) with zip 2.0, so that the mode in the external attributes is read.
const MADE_BY = (3 << 8) | 20;

function zip(entries) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const { name, data } of entries) {
    const nameBytes = Buffer.from(name, 'utf8');
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(UTF8_NAMES, 6);
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(MADE_BY, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(UTF8_NAMES, 8);
    central.writeUInt16LE(0, 10);
    central.writeUInt16LE(DOS_TIME, 12);
    central.writeUInt16LE(DOS_DATE, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(((0o100644 << 16) >>> 0), 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, data);
    centrals.push(central, nameBytes);
    offset += local.length + nameBytes.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

function main(argv) {
  const [src, moduleAtVersion, out] = argv;
  if (!src || !out || !/^[^@\s]+@v\d+\.\d+\.\d+\S*$/.test(moduleAtVersion ?? '')) {
    console.error('usage: node scripts/go-module-zip.mjs SRC MODULE@VERSION OUT.zip');
    process.exit(2);
  }
  const names = filesUnder(src);
  if (!names.includes('go.mod')) throw new Error(`${src} has no go.mod`);
  writeFileSync(out, zip(names.map((name) => ({ name: `${moduleAtVersion}/${name}`, data: readFileSync(path.join(src, name)) }))));
}

main(process.argv.slice(2));
