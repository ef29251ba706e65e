// The Firebase Auth JS SDK (modular, bundled): email and password sign-in, against the Auth emulator when the
// server names one. Its own chunk: the local runtime's dev sign-in never loads it.
import { initializeApp } from "firebase/app";
import { connectAuthEmulator, createUserWithEmailAndPassword, getAuth, onIdTokenChanged,
  signInWithEmailAndPassword, signOut as fbSignOut } from "firebase/auth";

export async function start(options, emulator, changed) {
  const app = initializeApp(options);
  const auth = getAuth(app);
  if (emulator) connectAuthEmulator(auth, `http://${emulator}`, { disableWarnings: true });
  onIdTokenChanged(auth, async (user) => changed(user, user ? await user.getIdToken() : null));
  return {
    signIn: (email, password) => signInWithEmailAndPassword(auth, email, password),
    signUp: (email, password) => createUserWithEmailAndPassword(auth, email, password),
    idToken: async () => { // after a reload the SDK restores its user asynchronously: wait for it
      await auth.authStateReady();
      return auth.currentUser ? auth.currentUser.getIdToken() : null;
    },
    signOut: () => fbSignOut(auth),
  };
}
