//! The audit broker: hash-chained JSON lines with HMAC-ed secrets, to file and stdout sinks.
