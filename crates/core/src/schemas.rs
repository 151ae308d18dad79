//! JSON Schemas generated from the contract types.

use schemars::schema_for;

/// Every contract's schema as `(file name, pretty JSON)`, in a fixed order.
pub fn all() -> Vec<(&'static str, String)> {
    let pretty = |schema: schemars::Schema| {
        let mut text = serde_json::to_string_pretty(&schema).expect("a schema is plain JSON");
        text.push('\n');
        text
    };
    vec![
        (
            "event_envelope.schema.json",
            pretty(schema_for!(crate::EventEnvelope)),
        ),
        (
            "execution_context.schema.json",
            pretty(schema_for!(crate::ExecutionContext)),
        ),
        (
            "task_graph.schema.json",
            pretty(schema_for!(crate::TaskGraph)),
        ),
        (
            "memory_record.schema.json",
            pretty(schema_for!(crate::MemoryRecord)),
        ),
        (
            "response_packet.schema.json",
            pretty(schema_for!(crate::ResponsePacket)),
        ),
    ]
}
