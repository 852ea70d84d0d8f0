//! tracing set-up: human or JSON output, optional rotating files.
