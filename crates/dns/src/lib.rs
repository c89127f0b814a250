//! protolab-dns (being built).
