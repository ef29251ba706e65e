// Verdicts of targaryen (the reference evaluator of Realtime Database rules) for a table of operations.
// Usage: node targaryen_verdicts.js <targaryen dir> <cases.json>; prints a JSON array of booleans (allowed?).
'use strict';

const fs = require('fs');
const targaryen = require(process.argv[2]);
const input = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));

const verdicts = input.rows.map(row => {
  let db = targaryen.database(input.rules[row.rules], row.data, row.now);
  if (row.auth !== null) {
    db = db.as(row.auth);
  }
  if (row.op === 'read') {
    return db.read(row.path, row.now).allowed;
  }
  if (row.op === 'write') {
    return db.write(row.path, row.value, {now: row.now}).allowed;
  }
  return db.update(row.path, row.value, row.now).allowed;
});
process.stdout.write(JSON.stringify(verdicts));
