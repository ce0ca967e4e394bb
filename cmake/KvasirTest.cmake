# kvasir_test(NAME <name> SOURCES <files...> LIBS <libs...> LABELS <labels...>
#             [ENV <VAR=value...>] [TIMEOUT <s>])
# One cmocka executable = one ctest test. Labels: unit, integration, fuzz,
# gpu, slow. `make test` runs everything but slow and gpu.
function(kvasir_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS;ENV;ARGS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  target_compile_definitions(${T_NAME} PRIVATE
    KVASIR_SOURCE_DIR="${CMAKE_SOURCE_DIR}" KVASIR_BINARY_DIR="${CMAKE_BINARY_DIR}")
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} ${T_ARGS})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "KVASIR_SOURCE_DIR=${CMAKE_SOURCE_DIR};${T_ENV}")
endfunction()
