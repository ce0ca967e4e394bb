; bash.scm — tags for Bash (tree-sitter-bash ships no tags.scm). Ours.
(function_definition name: (word) @name) @definition.function
(command name: (command_name (word) @name)) @reference.call
