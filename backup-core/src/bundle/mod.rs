//! The bundle: one zip file holding `snapshot.json`, each artifact under `data/`, and
//! `manifest.json` written last.
