// Whether targaryen (the reference evaluator of Realtime Database rules) loads each of a list of rule files.
// Usage: node targaryen_loads.js <targaryen dir> <definitions.json>; prints a JSON array of booleans (loaded?).
'use strict';

const fs = require('fs');
const targaryen = require(process.argv[2]);
const definitions = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));

const loaded = definitions.map(definition => {
  try {
    targaryen.ruleset(definition);
    return true;
  } catch (e) {
    return false;
  }
});
process.stdout.write(JSON.stringify(loaded));
