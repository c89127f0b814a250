//! protolab-udpecho (being built).
