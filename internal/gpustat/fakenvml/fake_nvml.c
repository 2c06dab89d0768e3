/* A stand-in for libnvidia-ml with NVML's signatures, for gpustat's tests:
 * two GPUs. GPU 0 reads 10, 30, 50 ...% busy, 20 of 80 GB used, and
 * 350 of 700 W on every other power read (the others fail). GPU 1 is like
 * a MIG-partitioned GPU: 40 GB used, no utilisation and no power.
 * FAKE_NVML_FAIL_INIT set fails nvmlInit. */
#include <stdint.h>
#include <stdlib.h>

typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef void *nvmlDevice_t;

static int devices[2];
static unsigned int reads[2], power_reads;

int nvmlInit_v2(void) { return getenv("FAKE_NVML_FAIL_INIT") ? 9 : 0; }
int nvmlDeviceGetCount_v2(unsigned int *n) { *n = 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) {
  if (i > 1) return 2;
  *d = &devices[i];
  return 0;
}
static int index_of(nvmlDevice_t d) { return (int *)d - devices; }
int nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
  if (index_of(d) == 1) return 3; /* NVML_ERROR_NOT_SUPPORTED, as on MIG */
  u->gpu = 10 + 20 * reads[0]++;
  u->memory = 0;
  return 0;
}
/* 80 GB total; GPU 0 uses 20 GB, GPU 1 40 GB. */
int nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
  m->total = 80000000000ULL;
  m->used = index_of(d) == 0 ? 20000000000ULL : 40000000000ULL;
  m->free = m->total - m->used;
  return 0;
}
int nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) {
  if (index_of(d) == 1 || power_reads++ % 2 == 1) return 3; /* NVML_ERROR_NOT_SUPPORTED */
  *mw = 350000;
  return 0;
}
int nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned int *mw) {
  (void)d;
  *mw = 700000;
  return 0;
}
