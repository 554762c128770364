//! In-tree Kubernetes API emulator.
