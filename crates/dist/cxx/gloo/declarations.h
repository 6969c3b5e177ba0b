// The gloo names that torch/csrc/distributed/c10d/ProcessGroupGloo.hpp mentions, declared
// and never defined (see README.md next to this file).
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace gloo {
// Complete only for the one call the header makes in an inline function body
// (ProcessGroupGloo::setTimeout, a virtual function that libtorch's vtable provides, so it is
// never emitted here). Its size and members are deliberately not declared.
class Context {
 public:
  Context() = delete;
  void setTimeout(std::chrono::milliseconds timeout);
};

namespace transport {
class Device;
class UnboundBuffer;
}  // namespace transport

namespace rendezvous {
// ProcessGroupGloo::GlooStore derives from this and overrides these four functions. The
// class is only named here: libtorch constructs its GlooStore, with its own vtable.
class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(
      const std::vector<std::string>& keys,
      const std::chrono::milliseconds& timeout) = 0;
};
}  // namespace rendezvous
}  // namespace gloo
