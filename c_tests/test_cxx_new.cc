// test_cxx_new.cc: C++ operator new / delete, exported by libmirs (x86_64 Linux).
//
// - Every form of new binds to mirs's definition (the same object as
//   mirs_malloc), not libstdc++'s wrapper, and returns a block mirs owns with
//   the alignment asked; every form of delete frees it.
// - Failure keeps libstdc++'s semantics: the throwing forms throw
//   std::bad_alloc after the new-handler loop (the handler runs until it
//   removes itself), a handler's own exception propagates, the nothrow forms
//   return nullptr after the same loop.
// - delete of a pointer mirs did not hand out is refused like free's.
// With -DMIRS_TEST_STATIC (a fully static executable with libmirs.a and
// libstdc++.a: no other operator new to hand failures to), the throwing
// forms run the handler loop themselves and throw through their own frame,
// and the nothrow forms return nullptr without calling the handler; the
// binding is not checked (a static executable has no dynamic symbols).
// owns() is asked about freed pointers, and delete given a stack one, on purpose.
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"

#include <cstdint>
#include <cstring>
#include <new>
#include <thread>

extern "C" {
#include "mirs_test.h"
}

static struct mirs_api api;

static const size_t HUGE_SIZE = SIZE_MAX / 2; // no allocator can serve it

#ifndef MIRS_TEST_STATIC
// The path of the object that defines address `p`.
static const char *object_of(void *p) {
  Dl_info info;
  if (p == nullptr || dladdr(p, &info) == 0 || info.dli_fname == nullptr) return "?";
  return info.dli_fname;
}

static void test_binding() {
  const char *mirs = object_of(MIRS_TEST_SYM(mirs_malloc));
  static const char *const forms[] = {
      "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
      "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
      "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
      "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
      "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t",
      "_ZdaPvmSt11align_val_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t",
      "_ZdaPvSt11align_val_tRKSt9nothrow_t",
  };
  for (const char *f : forms) {
    const char *where = object_of(dlsym(RTLD_DEFAULT, f));
    CHECKF(strcmp(where, mirs) == 0, "%s defined in %s, mirs_malloc in %s", f, where, mirs);
  }
}
#endif

// A block from a form of new: mirs's, aligned, usable for `size`; freed by
// the matching delete (owns() is false afterwards).
static bool live(void *p, size_t size, size_t align) {
  return p != nullptr && api.owns(p) && is_aligned(p, align) && api.usable_size(p) >= size;
}

struct Obj { long words[5]; };
struct alignas(256) Wide { char bytes[300]; };

static void test_forms() {
  Obj *o = new Obj();
  CHECK(live(o, sizeof(Obj), alignof(Obj)));
  delete o; // sized delete (-fsized-deallocation)
  CHECK(!api.owns(o));

  Obj *arr = new Obj[100];
  CHECK(live(arr, 100 * sizeof(Obj), alignof(Obj)));
  delete[] arr;
  CHECK(!api.owns(arr));

  Wide *w = new Wide; // aligned new (alignas above the default)
  CHECK(live(w, sizeof(Wide), 256));
  delete w; // sized aligned delete
  CHECK(!api.owns(w));

  Wide *wa = new Wide[7];
  CHECK(live(wa, 7 * sizeof(Wide), 256));
  delete[] wa;
  CHECK(!api.owns(wa));

  Obj *n = new (std::nothrow) Obj;
  CHECK(live(n, sizeof(Obj), alignof(Obj)));
  delete n;
  Obj *na = new (std::nothrow) Obj[3];
  CHECK(live(na, 3 * sizeof(Obj), alignof(Obj)));
  delete[] na;
  Wide *nw = new (std::nothrow) Wide;
  CHECK(live(nw, sizeof(Wide), 256));
  delete nw;
  Wide *nwa = new (std::nothrow) Wide[2];
  CHECK(live(nwa, 2 * sizeof(Wide), 256));
  delete[] nwa;

  // Each delete form by name, on the matching new.
  const std::align_val_t al{4096};
  void *p;
  p = ::operator new(40); ::operator delete(p); CHECK(!api.owns(p));
  p = ::operator new[](40); ::operator delete[](p); CHECK(!api.owns(p));
  p = ::operator new(40); ::operator delete(p, size_t{40}); CHECK(!api.owns(p));
  p = ::operator new[](40); ::operator delete[](p, size_t{40}); CHECK(!api.owns(p));
  p = ::operator new(40, std::nothrow); ::operator delete(p, std::nothrow); CHECK(!api.owns(p));
  p = ::operator new[](40, std::nothrow); ::operator delete[](p, std::nothrow); CHECK(!api.owns(p));
  p = ::operator new(40, al); CHECK(live(p, 40, 4096)); ::operator delete(p, al); CHECK(!api.owns(p));
  p = ::operator new[](40, al); CHECK(live(p, 40, 4096)); ::operator delete[](p, al); CHECK(!api.owns(p));
  p = ::operator new(40, al); ::operator delete(p, size_t{40}, al); CHECK(!api.owns(p));
  p = ::operator new[](40, al); ::operator delete[](p, size_t{40}, al); CHECK(!api.owns(p));
  p = ::operator new(40, al, std::nothrow); CHECK(live(p, 40, 4096));
  ::operator delete(p, al, std::nothrow); CHECK(!api.owns(p));
  p = ::operator new[](40, al, std::nothrow); CHECK(live(p, 40, 4096));
  ::operator delete[](p, al, std::nothrow); CHECK(!api.owns(p));

  // new(0): a distinct live block each time.
  void *z1 = ::operator new(0), *z2 = ::operator new(0);
  CHECK(live(z1, 0, 1) && live(z2, 0, 1) && z1 != z2);
  ::operator delete(z1);
  ::operator delete(z2);

  // A big block (past the small and large classes) through new and delete.
  void *big = ::operator new(48u << 20);
  CHECK(live(big, 48u << 20, 16));
  memset(big, 1, 1 << 20);
  ::operator delete(big);
  CHECK(!api.owns(big));

  // Made by one thread, deleted by another.
  Obj *cross = new Obj[8];
  std::thread([cross] { delete[] cross; }).join();
  CHECK(!api.owns(cross));
}

static void *volatile sink;
static int handler_calls;
static void handler_three_times() {
  if (++handler_calls == 3) std::set_new_handler(nullptr);
}
struct HandlerError {};
static void handler_throws() { throw HandlerError(); }

// Runs `f` (an allocation that cannot succeed); what it threw.
enum Outcome { RETURNED_NULL, RETURNED_BLOCK, THREW_BAD_ALLOC, THREW_OTHER };
template <class F> static Outcome attempt(F f) {
  try {
    void *p = f();
    return p == nullptr ? RETURNED_NULL : RETURNED_BLOCK;
  } catch (const std::bad_alloc &) {
    return THREW_BAD_ALLOC;
  } catch (...) {
    return THREW_OTHER;
  }
}

static void test_failure() {
  const std::align_val_t al{64};
  // No handler: std::bad_alloc at once, nullptr from the nothrow forms.
  CHECK(attempt([] { return ::operator new(HUGE_SIZE); }) == THREW_BAD_ALLOC);
  CHECK(attempt([] { return ::operator new[](HUGE_SIZE); }) == THREW_BAD_ALLOC);
  CHECK(attempt([&] { return ::operator new(HUGE_SIZE, al); }) == THREW_BAD_ALLOC);
  CHECK(attempt([&] { return ::operator new[](HUGE_SIZE, al); }) == THREW_BAD_ALLOC);
  CHECK(attempt([] { return ::operator new(HUGE_SIZE, std::nothrow); }) == RETURNED_NULL);
  CHECK(attempt([] { return ::operator new[](HUGE_SIZE, std::nothrow); }) == RETURNED_NULL);
  CHECK(attempt([&] { return ::operator new(HUGE_SIZE, al, std::nothrow); }) == RETURNED_NULL);
  CHECK(attempt([&] { return ::operator new[](HUGE_SIZE, al, std::nothrow); }) == RETURNED_NULL);
  // A new-expression too (the compiler's own call).
  CHECK(attempt([] {
    volatile size_t n = HUGE_SIZE;
    sink = new char[n]; // kept, so that the compiler cannot drop the call
    return sink;
  }) == THREW_BAD_ALLOC);

  // The handler loop: called until it removes itself, then bad_alloc (nullptr).
  handler_calls = 0;
  std::set_new_handler(handler_three_times);
  CHECK(attempt([] { return ::operator new(HUGE_SIZE); }) == THREW_BAD_ALLOC);
  CHECKF(handler_calls == 3, "handler ran %d times", handler_calls);
  handler_calls = 0;
  std::set_new_handler(handler_three_times);
  CHECK(attempt([&] { return ::operator new[](HUGE_SIZE, al); }) == THREW_BAD_ALLOC);
  CHECKF(handler_calls == 3, "handler ran %d times", handler_calls);
#ifdef MIRS_TEST_STATIC
  const int nothrow_calls = 0;
#else
  const int nothrow_calls = 3;
#endif
  handler_calls = 0;
  std::set_new_handler(handler_three_times);
  CHECK(attempt([] { return ::operator new(HUGE_SIZE, std::nothrow); }) == RETURNED_NULL);
  CHECKF(handler_calls == nothrow_calls, "handler ran %d times", handler_calls);
  handler_calls = 0;
  std::set_new_handler(handler_three_times);
  CHECK(attempt([&] { return ::operator new(HUGE_SIZE, al, std::nothrow); }) == RETURNED_NULL);
  CHECKF(handler_calls == nothrow_calls, "handler ran %d times", handler_calls);
  std::set_new_handler(nullptr);

  // A handler's own exception reaches the caller of new; nothrow swallows it.
  std::set_new_handler(handler_throws);
  CHECK(attempt([] { return ::operator new(HUGE_SIZE); }) == THREW_OTHER);
  CHECK(attempt([&] { return ::operator new(HUGE_SIZE, al); }) == THREW_OTHER);
  CHECK(attempt([] { return ::operator new(HUGE_SIZE, std::nothrow); }) == RETURNED_NULL);
  std::set_new_handler(nullptr);

  // Still serving after all that.
  void *p = ::operator new(100);
  CHECK(live(p, 100, 16));
  ::operator delete(p);
}

static void test_bad_delete() {
  // A pointer mirs never handed out and a double delete: refused and
  // reported (stderr), the heap intact.
  long on_stack[4] = {0};
  ::operator delete(on_stack + 1);
  Obj *o = new Obj;
  delete o;
  ::operator delete(o);
  Obj *a = new Obj, *b = new Obj;
  CHECK(a != b && live(a, sizeof(Obj), 8) && live(b, sizeof(Obj), 8));
  delete a;
  delete b;
}

int main() {
  CHECK(mirs_api_load(&api));
  if (test_failed) return test_report();
#ifndef MIRS_TEST_STATIC
  test_binding();
#endif
  test_forms();
  test_failure();
  test_bad_delete();
  return test_report();
}
