// libtorch's c10d behind the C interface of shim.h: TCPStore, ProcessGroupGloo, and the
// collectives of c10d::Backend. Nothing here implements a collective: every operation is
// c10d's own, called the way torch.distributed calls it.

#include "shim.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

struct swerl_store {
  c10::intrusive_ptr<c10d::TCPStore> store;
};

struct swerl_group {
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

namespace {

char* copy_string(const std::string& text) {
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, text.c_str(), text.size() + 1);
  }
  return out;
}

// Runs `body`, turning any exception into an error string. c10::Error carries a C++
// backtrace in what(); the message without it is what a user can act on.
template <typename F>
char* guarded(F&& body) {
  try {
    body();
    return nullptr;
  } catch (const c10::Error& e) {
    return copy_string(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return copy_string(e.what());
  } catch (...) {
    return copy_string("unknown C++ exception");
  }
}

at::Tensor& tensor_ref(swerl_tensor* t) {
  return *static_cast<at::Tensor*>(t);
}

c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case 0:
      return c10d::ReduceOp::SUM;
    case 1:
      return c10d::ReduceOp::MAX;
    case 2:
      return c10d::ReduceOp::MIN;
    default:
      throw std::invalid_argument("unknown reduce op " + std::to_string(op));
  }
}

// Waits for `work`, rethrowing its failure. wait() throws on a backend error or timeout.
void finish(swerl_group* group, const c10::intrusive_ptr<c10d::Work>& work) {
  work->wait(group->timeout);
}

c10::intrusive_ptr<c10d::Store> prefixed(swerl_store* store, const char* prefix) {
  return c10::make_intrusive<c10d::PrefixStore>(
      prefix, c10::static_intrusive_pointer_cast<c10d::Store>(store->store));
}

}  // namespace

extern "C" {

void swerl_free_string(char* s) {
  std::free(s);
}

char* swerl_store_new(const char* host, uint16_t port, int is_server, int wait_workers,
                      int64_t timeout_ms, swerl_store** out) {
  return guarded([&] {
    c10d::TCPStoreOptions opts;
    opts.port = port;
    opts.isServer = is_server != 0;
    if (wait_workers > 0) {
      opts.numWorkers = static_cast<size_t>(wait_workers);
      opts.waitWorkers = true;
    } else {
      opts.waitWorkers = false;
    }
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    *out = new swerl_store{std::move(store)};
  });
}

uint16_t swerl_store_port(const swerl_store* store) {
  return store->store->getPort();
}

void swerl_store_free(swerl_store* store) {
  delete store;
}

char* swerl_group_new_gloo(swerl_store* store, const char* prefix, int rank, int size,
                           int64_t timeout_ms, swerl_group** out) {
  return guarded([&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    // create_default picks the network device as torch.distributed does (GLOO_SOCKET_IFNAME,
    // else this host's name, else loopback).
    auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
    // The constructor connects the full mesh through the store: it returns once every rank
    // has joined, or throws when `timeout` passes first.
    auto backend =
        c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed(store, prefix), rank, size, options);
    *out = new swerl_group{c10::static_intrusive_pointer_cast<c10d::Backend>(backend), timeout};
  });
}

char* swerl_group_new_plugin(swerl_store* store, const char* prefix, int rank, int size,
                             int64_t timeout_ms, swerl_backend_factory factory,
                             swerl_group** out) {
  return guarded([&] {
    auto shared = prefixed(store, prefix);
    char* error = nullptr;
    void* raw = factory(shared.get(), rank, size, timeout_ms, &error);
    if (raw == nullptr) {
      std::string message = error != nullptr ? error : "the backend plugin returned nothing";
      std::free(error);
      throw std::runtime_error(message);
    }
    auto backend = c10::intrusive_ptr<c10d::Backend>::reclaim(static_cast<c10d::Backend*>(raw));
    *out = new swerl_group{std::move(backend), std::chrono::milliseconds(timeout_ms)};
  });
}

void swerl_group_free(swerl_group* group) {
  delete group;
}

char* swerl_group_set_timeout(swerl_group* group, int64_t timeout_ms) {
  return guarded([&] {
    group->timeout = std::chrono::milliseconds(timeout_ms);
    group->backend->setTimeout(group->timeout);
  });
}

char* swerl_all_reduce(swerl_group* group, swerl_tensor* tensor, int op) {
  return guarded([&] {
    std::vector<at::Tensor> tensors{tensor_ref(tensor)};
    c10d::AllreduceOptions opts;
    opts.reduceOp = reduce_op(op);
    finish(group, group->backend->allreduce(tensors, opts));
  });
}

char* swerl_reduce_scatter(swerl_group* group, swerl_tensor* output, swerl_tensor* input,
                           int op) {
  return guarded([&] {
    c10d::ReduceScatterOptions opts;
    opts.reduceOp = reduce_op(op);
    finish(group,
           group->backend->_reduce_scatter_base(tensor_ref(output), tensor_ref(input), opts));
  });
}

char* swerl_all_gather(swerl_group* group, swerl_tensor* output, swerl_tensor* input) {
  return guarded([&] {
    finish(group, group->backend->_allgather_base(tensor_ref(output), tensor_ref(input),
                                                  c10d::AllgatherOptions()));
  });
}

char* swerl_broadcast(swerl_group* group, swerl_tensor* tensor, int root) {
  return guarded([&] {
    std::vector<at::Tensor> tensors{tensor_ref(tensor)};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    finish(group, group->backend->broadcast(tensors, opts));
  });
}

char* swerl_barrier(swerl_group* group) {
  return guarded([&] { finish(group, group->backend->barrier(c10d::BarrierOptions())); });
}

char* swerl_tensor_drop_grad(swerl_tensor* tensor) {
  return guarded([&] { tensor_ref(tensor).mutable_grad() = at::Tensor(); });
}

}  // extern "C"
