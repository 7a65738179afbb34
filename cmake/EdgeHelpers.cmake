# edge_add_test(<name> SOURCES <files...> LIBS <targets...> [LABELS unit|integration] [TIMEOUT s])
#
# One GoogleTest executable registered as one CTest test. Unit tests must be hermetic;
# anything needing root, namespaces, dockerd or several nodes is labelled integration.
# Its main (tests/test_main.cc) exits 77 when a test skipped: CTest shows it "Skipped".
function(edge_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock edge_test_main)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT} SKIP_RETURN_CODE 77
    ENVIRONMENT "EDGE_BUILD_DIR=${CMAKE_BINARY_DIR};EDGE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()
