; python.scm — added to tree-sitter-python's tags.scm: base classes and
; decorators as references.
(class_definition superclasses: (argument_list (identifier) @name)) @reference.class
(decorator (identifier) @name) @reference.call
