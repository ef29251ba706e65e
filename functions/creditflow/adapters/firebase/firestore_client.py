"""The one Firestore client a deployment's adapters share."""

from __future__ import annotations

from google.cloud import firestore


def firestore_client(project: str, emulated: bool) -> firestore.Client:
    """On the emulator, a client without credentials; in production, firebase-admin's (its app made once)."""
    if emulated:
        from google.auth.credentials import AnonymousCredentials

        return firestore.Client(project=project, credentials=AnonymousCredentials())
    import firebase_admin
    from firebase_admin import firestore as admin_firestore

    if not firebase_admin._apps:
        firebase_admin.initialize_app()
    return admin_firestore.client()
