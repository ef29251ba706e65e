// Rebuilds TestToken.json from TestToken.sol with npm's solc (tools/node_modules), EVM version pinned to prague
// (what py-evm and anvil run): `node tests/chain/compile.js [out.json]` after `cd tools && npm ci` (which `make test`
// runs). tests/adapters/test_web3_chain.py checks the committed artifact is what this builds.
const path = require('path');
const fs = require('fs');
const solc = require(path.join(__dirname, '../../tools/node_modules/solc'));
const file = 'TestToken.sol';
const input = {
  language: 'Solidity',
  sources: { [file]: { content: fs.readFileSync(path.join(__dirname, file), 'utf8') } },
  settings: {
    optimizer: { enabled: true, runs: 200 }, evmVersion: 'prague',
    metadata: { bytecodeHash: 'none' },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === 'error');
if (errors.length) { console.error(errors.map((e) => e.formattedMessage).join('\n')); process.exit(1); }
const contract = out.contracts[file].TestToken;
const artifact = { compiler: `solc ${solc.version()}`, evmVersion: 'prague', abi: contract.abi,
                   bytecode: '0x' + contract.evm.bytecode.object };
const target = process.argv[2] || path.join(__dirname, 'TestToken.json');
fs.writeFileSync(target, JSON.stringify(artifact, null, 1) + '\n');
console.log(`${target}: ${contract.evm.bytecode.object.length / 2} bytes of bytecode`);
