#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
// new/delete of small objects through libstdc++'s operator new (which calls malloc)
// against malloc/free called directly (what an exported operator new would do).
struct Node { Node *next; long pad[3]; };
static Node *volatile sink;
template <bool Direct> static double run(long rounds) {
  auto t0 = std::chrono::steady_clock::now();
  Node *slots[256] = {};
  for (long r = 0; r < rounds; r++) {
    unsigned i = (unsigned)(r * 2654435761u) & 255;
    if (slots[i]) { if (Direct) std::free(slots[i]); else delete slots[i]; }
    slots[i] = Direct ? (Node *)std::malloc(sizeof(Node)) : new Node;
    sink = slots[i];
  }
  for (auto p : slots) if (p) { if (Direct) std::free(p); else delete p; }
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / rounds;
}
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 50000000;
  double a[5], b[5];
  for (int k = 0; k < 5; k++) { a[k] = run<false>(n); b[k] = run<true>(n); }
  auto med = [](double *v) { for (int i = 0; i < 5; i++) for (int j = i + 1; j < 5; j++) if (v[j] < v[i]) { double t = v[i]; v[i] = v[j]; v[j] = t; } return v[2]; };
  printf("ns per new+delete: operator new (libstdc++) %.2f, malloc+free direct %.2f\n", med(a), med(b));
}
