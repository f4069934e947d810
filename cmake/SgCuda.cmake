# The CUDA backend switch (SG_CUDA = AUTO | ON | OFF, declared in the top-level CMakeLists).
#
#   include(cmake/SgCuda.cmake)      # before add_subdirectory(autodiff): decides, enables CUDA
#   sg_cuda_attach(scoregrad)        # after it: adds autodiff/backend/cuda to the library
#
# AUTO turns the backend on when check_language(CUDA) finds nvcc (and the build is not
# sanitized: nvcc does not take -fsanitize). The result is SG_CUDA_ENABLED (ON/OFF); when ON,
# the library gets the CUDA sources, links CUDA::cudart and CUDA::cublas and defines
# SG_WITH_CUDA (PUBLIC, so tests and programs can ask for it).
include_guard(GLOBAL)

option(SG_CUDA_WERROR "Treat warnings in the CUDA sources (host compiler's and nvcc's) as errors" OFF)

set_property(CACHE SG_CUDA PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${SG_CUDA}" _sg_cuda)
set(SG_CUDA_ENABLED OFF)
if(_sg_cuda STREQUAL "ON" OR _sg_cuda STREQUAL "AUTO")
  if(SG_SANITIZE)
    if(_sg_cuda STREQUAL "ON")
      message(FATAL_ERROR "SG_CUDA=ON cannot be combined with SG_SANITIZE=ON (nvcc takes no -fsanitize)")
    endif()
    message(STATUS "scoregrad: CUDA backend off (AUTO, sanitized build)")
  else()
    include(CheckLanguage)
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
      set(SG_CUDA_ENABLED ON)
    elseif(_sg_cuda STREQUAL "ON")
      message(FATAL_ERROR "SG_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER)")
    else()
      message(STATUS "scoregrad: CUDA backend off (AUTO, no nvcc found)")
    endif()
  endif()
elseif(_sg_cuda STREQUAL "OFF")
  message(STATUS "scoregrad: CUDA backend off (SG_CUDA=OFF)")
else()
  message(FATAL_ERROR "SG_CUDA must be AUTO, ON or OFF (got '${SG_CUDA}')")
endif()

if(SG_CUDA_ENABLED)
  # Explicit architectures (A100 and H100 class), never "native": the build machine may have
  # no GPU at all. Override with -DCMAKE_CUDA_ARCHITECTURES=...
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures for the scoregrad backend")
  endif()
  # One runtime for everything: the shared libcudart that CUDA::cudart names.
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  # The C++ standard (20) applies to CUDA sources too; CMake 3.25 knows no C++20 flag for nvcc.
  if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  message(STATUS "scoregrad: CUDA backend on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES})")
endif()

function(sg_cuda_attach target)
  if(NOT SG_CUDA_ENABLED)
    return()
  endif()
  set(dir ${PROJECT_SOURCE_DIR}/autodiff/backend/cuda)
  # Host code (allocator, streams, cuBLAS, the Backend class) is plain C++; only the kernels
  # go through nvcc. The library glob (autodiff/*/*.cpp) does not reach this folder.
  target_sources(${target} PRIVATE ${dir}/cuda_backend.cpp ${dir}/elementwise.cu ${dir}/reduce_index.cu
                                   ${dir}/conv.cu)
  set_target_properties(${target} PROPERTIES CUDA_STANDARD 20 CUDA_STANDARD_REQUIRED ON
                                             CUDA_RUNTIME_LIBRARY Shared)
  # Warnings on for the .cu files: the host compiler's (-Wall -Wextra, less the two the C++ flags
  # also drop; -Wpedantic is left out: it flags nvcc's generated host stubs) and nvcc's own
  # (--Wreorder; --Wdefault-stream-launch: every launch names its stream; lambdas capturing
  # `this`). The sources compile without warnings; SG_CUDA_WERROR=ON keeps them so.
  #
  # --fmad=false: nvcc contracts a * b + c into one fused multiply-add by default, the host is
  # built with -ffp-contract=off (sg_flags), so the same functor (functors.hpp), Philox sample
  # (philox.hpp) or im2col/fold index arithmetic would round differently on the GPU. tests/cuda
  # compare these with the CPU bit for bit (the generator rows: uniform, rademacher, bernoulli
  # identical; every copy, gather, where, max/min and integer op exactly equal), so device code
  # does no contraction, in every .cu file. cuBLAS GEMMs are not affected (library code; they
  # are compared within tolerances).
  set(cuda_flags -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter,-Wno-missing-field-initializers
                 -Xcompiler=-ffp-contract=off --Wreorder --Wdefault-stream-launch
                 --Wext-lambda-captures-this --fmad=false)
  if(SG_CUDA_WERROR)
    list(APPEND cuda_flags -Xcompiler=-Werror "SHELL:--Werror all-warnings")
  endif()
  target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:CUDA>:${cuda_flags}>")
  target_link_libraries(${target} PRIVATE CUDA::cudart CUDA::cublas)
  target_compile_definitions(${target} PUBLIC SG_WITH_CUDA)
endfunction()
