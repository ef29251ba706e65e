"""Firebase adapters: Firestore, Realtime Database, Cloud Storage, Cloud Tasks, Auth."""
