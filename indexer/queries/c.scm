; c.scm — added to tree-sitter-c's tags.scm: calls and type uses as
; references (upstream has none, and the repo map needs them), macros.
(call_expression function: (identifier) @name) @reference.call
(call_expression function: (field_expression field: (field_identifier) @name)) @reference.call
(preproc_function_def name: (identifier) @name) @definition.macro
(type_identifier) @name @reference.type
