// The C interface between swerl-dist (Rust) and libtorch's c10d (C++).
//
// Every function that can fail returns NULL on success or an error message allocated with
// malloc, which the caller frees with swerl_free_string. No C++ exception crosses this
// boundary. Tensors are tch's handles, which point at an at::Tensor.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct swerl_store swerl_store;
typedef struct swerl_group swerl_group;
typedef void swerl_tensor;  // at::Tensor*

// What a backend plugin (the NCCL one) exports: builds a c10d::Backend over a c10d::Store*
// and returns it as a c10d::Backend* holding one reference, or NULL with *error set.
typedef void* (*swerl_backend_factory)(void* store, int rank, int size, int64_t timeout_ms,
                                       char** error);

void swerl_free_string(char* s);

// A TCPStore. The server binds `port` (0: any free port, read back with swerl_store_port)
// and, when wait_workers > 0, waits that many clients; a client retries until timeout_ms.
char* swerl_store_new(const char* host, uint16_t port, int is_server, int wait_workers,
                      int64_t timeout_ms, swerl_store** out);
uint16_t swerl_store_port(const swerl_store* store);
void swerl_store_free(swerl_store* store);

// A process group of `size` ranks rendezvousing through `store` under `prefix`.
char* swerl_group_new_gloo(swerl_store* store, const char* prefix, int rank, int size,
                           int64_t timeout_ms, swerl_group** out);
char* swerl_group_new_plugin(swerl_store* store, const char* prefix, int rank, int size,
                             int64_t timeout_ms, swerl_backend_factory factory,
                             swerl_group** out);
void swerl_group_free(swerl_group* group);
// Changes the timeout of every later collective.
char* swerl_group_set_timeout(swerl_group* group, int64_t timeout_ms);

// Collectives; each returns once the operation has completed (or failed, or timed out).
// op: 0 sum, 1 max, 2 min.
char* swerl_all_reduce(swerl_group* group, swerl_tensor* tensor, int op);
char* swerl_reduce_scatter(swerl_group* group, swerl_tensor* output, swerl_tensor* input, int op);
char* swerl_all_gather(swerl_group* group, swerl_tensor* output, swerl_tensor* input);
char* swerl_broadcast(swerl_group* group, swerl_tensor* tensor, int root);
char* swerl_barrier(swerl_group* group);

// Drops a tensor's accumulated gradient (tensor.grad = None), so that the next backward
// starts a fresh one of whatever shape the tensor has then.
char* swerl_tensor_drop_grad(swerl_tensor* tensor);

#ifdef __cplusplus
}
#endif
