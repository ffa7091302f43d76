# tailkit CMake helpers: dependency discovery, warning flags, test and fuzzer registration.

macro(tk_find_dependencies)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
  pkg_check_modules(PROTOBUF_C REQUIRED IMPORTED_TARGET libprotobuf-c)
  pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
  pkg_check_modules(GNUTLS REQUIRED IMPORTED_TARGET gnutls)
  pkg_check_modules(CUNIT REQUIRED IMPORTED_TARGET cunit)
  pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2)
  pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
  pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
  pkg_check_modules(LIBB2 IMPORTED_TARGET libb2)
  find_package(nng CONFIG REQUIRED)
  find_package(Threads REQUIRED)
  find_program(PROTOC_C protoc-c REQUIRED)
endmacro()

# Warning and sanitizer flags for every tailkit target.
function(tk_target_flags tgt)
  # _FILE_OFFSET_BITS: 64-bit off_t and inode numbers on 32-bit targets
  # (armv7: readdir() on a filesystem with 64-bit inodes fails otherwise)
  target_compile_definitions(${tgt} PRIVATE _GNU_SOURCE _FILE_OFFSET_BITS=64)
  target_compile_options(${tgt} PRIVATE
    -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wformat=2 -Wvla)
  if(TK_WERROR)
    target_compile_options(${tgt} PRIVATE -Werror)
  endif()
  if(TK_FAULT_INJECTION)
    target_compile_definitions(${tgt} PRIVATE TK_FAULT_INJECTION=1)
  endif()
endfunction()

if(TK_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

if(TK_FUZZ)
  # Coverage instrumentation everywhere; only fuzz targets link libFuzzer's main.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

# tk_library(name SOURCES ... [PUBLIC_LIBS ...] [PRIVATE_LIBS ...])
function(tk_library name)
  cmake_parse_arguments(A "" "" "SOURCES;PUBLIC_LIBS;PRIVATE_LIBS" ${ARGN})
  add_library(${name} STATIC ${A_SOURCES})
  target_include_directories(${name}
    PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${A_PUBLIC_LIBS} PRIVATE ${A_PRIVATE_LIBS})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  tk_target_flags(${name})
endfunction()

# tk_unit_test(name LABEL label SOURCES ... LIBS ... [INCLUDES ...] [TIMEOUT s] [ARGS ...])
# One CUnit runner executable = one ctest.  Runners exit non-zero on any failure,
# and 77 (ctest: Skipped) when every test they ran was skipped (tk_test_skip).
function(tk_unit_test name)
  cmake_parse_arguments(A "" "LABEL;TIMEOUT" "SOURCES;LIBS;INCLUDES;ARGS" ${ARGN})
  if(TK_FUZZ)
    return()  # the fuzz build carries only libraries and fuzz targets
  endif()
  if(NOT A_LABEL)
    set(A_LABEL unit)
  endif()
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  add_executable(${name} ${A_SOURCES})
  target_link_libraries(${name} PRIVATE tk_testharness ${A_LIBS})
  target_include_directories(${name} PRIVATE ${A_INCLUDES})
  tk_target_flags(${name})
  add_test(NAME ${name} COMMAND ${name} ${A_ARGS})
  # cross builds run tests under qemu-user; tests that hit its limits skip
  string(REPLACE ";" " " _emu "${CMAKE_CROSSCOMPILING_EMULATOR}")
  set_tests_properties(${name} PROPERTIES LABELS "${A_LABEL}" TIMEOUT ${A_TIMEOUT}
    SKIP_RETURN_CODE 77
    ENVIRONMENT "TK_VECTORS=${PROJECT_SOURCE_DIR}/tests/vectors;TK_EMULATOR=${_emu}")
endfunction()

# tk_fuzzer(name SOURCES ... LIBS ... [CORPUS dir])
# Built only with TK_FUZZ=ON (clang).  Registers a short smoke run as a ctest
# labelled "fuzz"; tools/fuzz.sh runs the long campaigns.
function(tk_fuzzer name)
  cmake_parse_arguments(A "" "CORPUS" "SOURCES;LIBS;INCLUDES" ${ARGN})
  if(NOT TK_FUZZ)
    return()
  endif()
  add_executable(${name} ${A_SOURCES})
  target_link_libraries(${name} PRIVATE ${A_LIBS})
  target_include_directories(${name} PRIVATE ${A_INCLUDES})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  tk_target_flags(${name})
  if(NOT A_CORPUS)
    set(A_CORPUS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name})
  endif()
  set(work ${CMAKE_BINARY_DIR}/fuzz-work/${name})
  add_test(NAME ${name}_smoke
    COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
      ${PROJECT_SOURCE_DIR}/tools/fuzz_smoke.sh $<TARGET_FILE:${name}> ${A_CORPUS} ${work})
  set_tests_properties(${name}_smoke PROPERTIES LABELS fuzz TIMEOUT 120)
endfunction()
