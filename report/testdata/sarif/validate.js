#!/usr/bin/env node
// Validates SARIF files against the SARIF 2.1.0 JSON schema shipped by
// Microsoft's SARIF SDK (@microsoft/sarif-multitool-linux/sarif-2.1.0.json),
// using the ajv installed by install.sh. Nothing is downloaded here.
//
// Usage: node validate.js VALIDATOR_DIR FILE.sarif...
// Exit status: 0 all valid, 1 some file invalid, 2 setup or usage error.
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

function fail(msg) {
  process.stderr.write(msg + '\n');
  process.exit(2);
}

const [dir, ...files] = process.argv.slice(2);
if (!dir || files.length === 0) fail('usage: node validate.js VALIDATOR_DIR FILE.sarif...');

const req = createRequire(path.join(path.resolve(dir), 'package.json'));
const schemaPath = req.resolve('@microsoft/sarif-multitool-linux/sarif-2.1.0.json');
const schema = JSON.parse(fs.readFileSync(schemaPath, 'utf8'));

// Pick the ajv class for the draft the schema declares, so the meta-schema
// keywords are interpreted as the schema's authors meant.
const draft = String(schema.$schema || '');
let Ajv;
if (draft.includes('2020-12')) Ajv = req('ajv/dist/2020');
else if (draft.includes('2019-09')) Ajv = req('ajv/dist/2019');
else if (draft.includes('draft-07') || draft.includes('draft-06')) Ajv = req('ajv');
else fail(`unsupported schema draft ${JSON.stringify(draft)} in ${schemaPath}`);
Ajv = Ajv.default || Ajv;
const addFormats = req('ajv-formats').default || req('ajv-formats');

// strict:false: the schema uses annotations (e.g. "default" values) that
// ajv's strict mode rejects; validation itself stays complete.
const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: true });
addFormats(ajv);
const validate = ajv.compile(schema);

let bad = 0;
for (const f of files) {
  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(f, 'utf8'));
  } catch (e) {
    process.stderr.write(`${f}: not JSON: ${e.message}\n`);
    bad++;
    continue;
  }
  if (validate(doc)) {
    process.stdout.write(`${f}: valid SARIF 2.1.0 (${draft})\n`);
  } else {
    bad++;
    for (const e of validate.errors) {
      process.stderr.write(`${f}: ${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}\n`);
    }
  }
}
process.exit(bad ? 1 : 0);
