// Starts the community Firestore emulator (@firestore-emulator/server, a gRPC server speaking the Firestore
// API) on the port given; prints "ready" once it listens. Used by the contract tests.
const { FirestoreServer } = require('@firestore-emulator/server');

const port = Number(process.argv[2]);
new FirestoreServer().start(port).then(() => console.log('ready'));
