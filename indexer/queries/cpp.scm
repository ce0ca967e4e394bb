; cpp.scm — added to tree-sitter-cpp's tags.scm: calls and type uses as
; references, namespaces and macros.
(call_expression function: (identifier) @name) @reference.call
(call_expression function: (field_expression field: (field_identifier) @name)) @reference.call
(call_expression function: (qualified_identifier name: (identifier) @name)) @reference.call
(namespace_definition name: (namespace_identifier) @name) @definition.module
(preproc_function_def name: (identifier) @name) @definition.macro
(type_identifier) @name @reference.type
(function_declarator declarator: (destructor_name) @name) @definition.function
