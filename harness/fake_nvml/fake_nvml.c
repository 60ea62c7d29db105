/*
 * fake_nvml: a scripted stand-in for libnvidia-ml.so, built by harness/build.rs so the GPU
 * telemetry path (charter::telemetry::gpu, via nvml-wrapper) is tested without a GPU.
 *
 * It exports the NVML entry points charter reads, with the real names, signatures and struct
 * layouts (nvml.h, as bound by nvml-wrapper-sys 0.10). Values come from a script file named by
 * the environment variable FAKE_NVML_SCRIPT, parsed on every nvmlInit_v2 (so each test gets a
 * fresh state). Without a readable script, nvmlInit_v2 returns NVML_ERROR_DRIVER_NOT_LOADED.
 *
 * Script format (one directive per line; '#' starts a comment line; blank lines are ignored):
 *
 *   driver_version=<text>
 *   device <i> uuid=<text> mem_total=<bytes> power_limit_mw=<mW> name=<rest of the line>
 *   process <i> pid=<pid> used=<bytes>|na kind=compute|graphics
 *   tick <i> util=<%> mem_util=<%> mem_used=<bytes> power_mw=<mW> energy_mj=<mJ> temp=<C> sm_clock=<MHz>
 *
 * Devices are numbered by the order of their `device` lines (<i> must be 0, 1, ... in order).
 * `tick` lines give device <i>'s successive readings. Rule: each call of
 * nvmlDeviceGetUtilizationRates on a device advances that device to its next tick (the first
 * call gives the first tick; after the last tick it stays there); every other getter returns
 * the values of the device's current tick (the first tick before any utilisation call). A key
 * missing from a tick line (or from a device line) makes its getter return
 * NVML_ERROR_NOT_SUPPORTED. `used=na` gives NVML_VALUE_NOT_AVAILABLE for that process.
 *
 * Environment knob: FAKE_NVML_NO_ENERGY=1 makes nvmlDeviceGetTotalEnergyConsumption return
 * NVML_ERROR_NOT_SUPPORTED on every device (as on pre-Volta GPUs).
 *
 * Build variants: -DFAKE_NVML_NO_INIT leaves out nvmlInit_v2, -DFAKE_NVML_NO_SHUTDOWN leaves out
 * nvmlShutdown (to test that a broken library is reported as unavailable, not a panic).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef struct fake_device *nvmlDevice_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_UNKNOWN 999

#define NVML_CLOCK_SM 1
#define NVML_TEMPERATURE_GPU 0
#define NVML_VALUE_NOT_AVAILABLE (~0ULL)

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

enum { F_UTIL, F_MEM_UTIL, F_MEM_USED, F_POWER, F_ENERGY, F_TEMP, F_SM_CLOCK, N_FIELDS };
static const char *FIELD_KEYS[N_FIELDS] = {"util",      "mem_util", "mem_used", "power_mw",
                                           "energy_mj", "temp",     "sm_clock"};

typedef struct {
    int has[N_FIELDS];
    unsigned long long v[N_FIELDS];
} tick_t;

#define MAX_DEVICES 16
#define MAX_PROCS 256
#define TEXT_LEN 96

struct fake_device {
    char name[TEXT_LEN];
    char uuid[TEXT_LEN];
    int has_mem_total, has_power_limit;
    unsigned long long mem_total;
    unsigned int power_limit_mw;
    tick_t *ticks;
    int nticks, cap_ticks;
    int cursor; /* -1 before the first utilisation call */
};

typedef struct {
    int device;
    unsigned int pid;
    unsigned long long used;
    int graphics;
} fake_proc;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int init_count = 0;
static int no_energy = 0;
static char driver_version[TEXT_LEN] = "fake-nvml";
static struct fake_device devices[MAX_DEVICES];
static int ndevices = 0;
static fake_proc procs[MAX_PROCS];
static int nprocs = 0;

static void reset_state(void) {
    for (int i = 0; i < ndevices; i++) free(devices[i].ticks);
    memset(devices, 0, sizeof devices);
    ndevices = 0;
    nprocs = 0;
    no_energy = 0;
    strcpy(driver_version, "fake-nvml");
}

static void copy_text(char *dst, const char *src) {
    size_t n = strcspn(src, "\r\n");
    if (n >= TEXT_LEN) n = TEXT_LEN - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Value of `key=` in a whitespace-separated line, or NULL. */
static const char *find_key(const char *line, const char *key) {
    size_t klen = strlen(key);
    const char *p = line;
    while ((p = strstr(p, key)) != NULL) {
        int at_word = (p == line) || p[-1] == ' ' || p[-1] == '\t';
        if (at_word && p[klen] == '=') return p + klen + 1;
        p += klen;
    }
    return NULL;
}

static int parse_u64(const char *v, unsigned long long *out) {
    char *end;
    if (v == NULL || *v < '0' || *v > '9') return 0;
    *out = strtoull(v, &end, 10);
    return end != v;
}

static int parse_script(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    char line[1024];
    while (fgets(line, sizeof line, f) != NULL) {
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (*s == '#' || *s == '\n' || *s == '\r' || *s == '\0') continue;
        int idx = -1;
        if (strncmp(s, "driver_version=", 15) == 0) {
            copy_text(driver_version, s + 15);
        } else if (sscanf(s, "device %d", &idx) == 1) {
            if (idx != ndevices || idx >= MAX_DEVICES) continue;
            struct fake_device *d = &devices[ndevices++];
            d->cursor = -1;
            const char *v;
            /* name= takes the rest of the line, so parse the other keys before it. */
            const char *name = find_key(s, "name");
            char head[1024];
            size_t hlen = name ? (size_t)(name - s) : strlen(s);
            memcpy(head, s, hlen);
            head[hlen] = '\0';
            if (name) copy_text(d->name, name);
            if ((v = find_key(head, "uuid")) != NULL) {
                copy_text(d->uuid, v);
                d->uuid[strcspn(d->uuid, " \t")] = '\0';
            }
            d->has_mem_total = parse_u64(find_key(head, "mem_total"), &d->mem_total);
            unsigned long long pl;
            if (parse_u64(find_key(head, "power_limit_mw"), &pl)) {
                d->has_power_limit = 1;
                d->power_limit_mw = (unsigned int)pl;
            }
        } else if (sscanf(s, "process %d", &idx) == 1) {
            if (idx < 0 || idx >= ndevices || nprocs >= MAX_PROCS) continue;
            fake_proc *p = &procs[nprocs];
            unsigned long long pid;
            if (!parse_u64(find_key(s, "pid"), &pid)) continue;
            p->device = idx;
            p->pid = (unsigned int)pid;
            const char *used = find_key(s, "used");
            if (used != NULL && strncmp(used, "na", 2) == 0) {
                p->used = NVML_VALUE_NOT_AVAILABLE;
            } else if (!parse_u64(used, &p->used)) {
                continue;
            }
            const char *kind = find_key(s, "kind");
            p->graphics = kind != NULL && strncmp(kind, "graphics", 8) == 0;
            nprocs++;
        } else if (sscanf(s, "tick %d", &idx) == 1) {
            if (idx < 0 || idx >= ndevices) continue;
            struct fake_device *d = &devices[idx];
            if (d->nticks == d->cap_ticks) {
                int cap = d->cap_ticks ? d->cap_ticks * 2 : 16;
                tick_t *t = realloc(d->ticks, (size_t)cap * sizeof(tick_t));
                if (t == NULL) continue;
                d->ticks = t;
                d->cap_ticks = cap;
            }
            tick_t *t = &d->ticks[d->nticks++];
            for (int k = 0; k < N_FIELDS; k++)
                t->has[k] = parse_u64(find_key(s, FIELD_KEYS[k]), &t->v[k]);
        }
    }
    fclose(f);
    return 1;
}

#ifndef FAKE_NVML_NO_INIT
nvmlReturn_t nvmlInit_v2(void) {
    pthread_mutex_lock(&lock);
    nvmlReturn_t ret = NVML_SUCCESS;
    reset_state();
    const char *path = getenv("FAKE_NVML_SCRIPT");
    if (path == NULL || !parse_script(path)) {
        reset_state();
        ret = NVML_ERROR_DRIVER_NOT_LOADED;
    } else {
        const char *ne = getenv("FAKE_NVML_NO_ENERGY");
        no_energy = ne != NULL && strcmp(ne, "1") == 0;
        init_count++;
    }
    pthread_mutex_unlock(&lock);
    return ret;
}
#endif

#ifndef FAKE_NVML_NO_SHUTDOWN
nvmlReturn_t nvmlShutdown(void) {
    pthread_mutex_lock(&lock);
    nvmlReturn_t ret = NVML_SUCCESS;
    if (init_count == 0) {
        ret = NVML_ERROR_UNINITIALIZED;
    } else if (--init_count == 0) {
        reset_state();
    }
    pthread_mutex_unlock(&lock);
    return ret;
}
#endif

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}

/* Every device call: lock, check init and the handle; `d` is the device. */
#define BEGIN_DEVICE(dev)                                                                  \
    pthread_mutex_lock(&lock);                                                             \
    nvmlReturn_t ret = NVML_SUCCESS;                                                       \
    struct fake_device *d = (dev);                                                         \
    if (init_count == 0) {                                                                 \
        ret = NVML_ERROR_UNINITIALIZED;                                                    \
        goto out;                                                                          \
    }                                                                                      \
    if (d == NULL || d < devices || d >= devices + ndevices) {                             \
        ret = NVML_ERROR_INVALID_ARGUMENT;                                                 \
        goto out;                                                                          \
    }
#define END_DEVICE                                                                         \
    out:                                                                                   \
    pthread_mutex_unlock(&lock);                                                           \
    return ret;

static const tick_t *current_tick(const struct fake_device *d) {
    if (d->nticks == 0) return NULL;
    return &d->ticks[d->cursor < 0 ? 0 : d->cursor];
}

/* Field `k` of the current tick, or NOT_SUPPORTED. */
static nvmlReturn_t tick_field(const struct fake_device *d, int k, unsigned long long *v) {
    const tick_t *t = current_tick(d);
    if (t == NULL || !t->has[k]) return NVML_ERROR_NOT_SUPPORTED;
    *v = t->v[k];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    pthread_mutex_lock(&lock);
    nvmlReturn_t ret = NVML_SUCCESS;
    if (init_count == 0) {
        ret = NVML_ERROR_UNINITIALIZED;
    } else if (version == NULL) {
        ret = NVML_ERROR_INVALID_ARGUMENT;
    } else if (strlen(driver_version) + 1 > length) {
        ret = NVML_ERROR_INSUFFICIENT_SIZE;
    } else {
        strcpy(version, driver_version);
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    pthread_mutex_lock(&lock);
    nvmlReturn_t ret = NVML_SUCCESS;
    if (init_count == 0) ret = NVML_ERROR_UNINITIALIZED;
    else if (count == NULL) ret = NVML_ERROR_INVALID_ARGUMENT;
    else *count = (unsigned int)ndevices;
    pthread_mutex_unlock(&lock);
    return ret;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    pthread_mutex_lock(&lock);
    nvmlReturn_t ret = NVML_SUCCESS;
    if (init_count == 0) ret = NVML_ERROR_UNINITIALIZED;
    else if (device == NULL || index >= (unsigned int)ndevices) ret = NVML_ERROR_INVALID_ARGUMENT;
    else *device = &devices[index];
    pthread_mutex_unlock(&lock);
    return ret;
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    BEGIN_DEVICE(device)
    if (index == NULL) ret = NVML_ERROR_INVALID_ARGUMENT;
    else *index = (unsigned int)(d - devices);
    END_DEVICE
}

static nvmlReturn_t copy_out(const char *src, char *dst, unsigned int length) {
    if (dst == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (src[0] == '\0') return NVML_ERROR_NOT_SUPPORTED;
    if (strlen(src) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(dst, src);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    BEGIN_DEVICE(device)
    ret = copy_out(d->name, name, length);
    END_DEVICE
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    BEGIN_DEVICE(device)
    ret = copy_out(d->uuid, uuid, length);
    END_DEVICE
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *util) {
    BEGIN_DEVICE(device)
    if (util == NULL) {
        ret = NVML_ERROR_INVALID_ARGUMENT;
        goto out;
    }
    if (d->cursor < d->nticks - 1) d->cursor++;
    unsigned long long g, m;
    ret = tick_field(d, F_UTIL, &g);
    if (ret == NVML_SUCCESS) ret = tick_field(d, F_MEM_UTIL, &m);
    if (ret == NVML_SUCCESS) {
        util->gpu = (unsigned int)g;
        util->memory = (unsigned int)m;
    }
    END_DEVICE
}

static nvmlReturn_t memory(struct fake_device *d, unsigned long long *total,
                           unsigned long long *used) {
    if (!d->has_mem_total) return NVML_ERROR_NOT_SUPPORTED;
    nvmlReturn_t r = tick_field(d, F_MEM_USED, used);
    if (r != NVML_SUCCESS) return r;
    *total = d->mem_total;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *mem) {
    BEGIN_DEVICE(device)
    unsigned long long total = 0, used = 0;
    if (mem == NULL) {
        ret = NVML_ERROR_INVALID_ARGUMENT;
    } else if ((ret = memory(d, &total, &used)) == NVML_SUCCESS) {
        mem->total = total;
        mem->reserved = 0;
        mem->used = used;
        mem->free = total > used ? total - used : 0;
    }
    END_DEVICE
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *mem) {
    BEGIN_DEVICE(device)
    unsigned long long total = 0, used = 0;
    if (mem == NULL) {
        ret = NVML_ERROR_INVALID_ARGUMENT;
    } else if ((ret = memory(d, &total, &used)) == NVML_SUCCESS) {
        mem->total = total;
        mem->used = used;
        mem->free = total > used ? total - used : 0;
    }
    END_DEVICE
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    BEGIN_DEVICE(device)
    unsigned long long v;
    if (power == NULL) ret = NVML_ERROR_INVALID_ARGUMENT;
    else if ((ret = tick_field(d, F_POWER, &v)) == NVML_SUCCESS) *power = (unsigned int)v;
    END_DEVICE
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device,
                                                 unsigned long long *energy) {
    BEGIN_DEVICE(device)
    if (energy == NULL) ret = NVML_ERROR_INVALID_ARGUMENT;
    else if (no_energy) ret = NVML_ERROR_NOT_SUPPORTED;
    else ret = tick_field(d, F_ENERGY, energy);
    END_DEVICE
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, unsigned int sensor,
                                      unsigned int *temp) {
    BEGIN_DEVICE(device)
    unsigned long long v;
    if (temp == NULL) ret = NVML_ERROR_INVALID_ARGUMENT;
    else if (sensor != NVML_TEMPERATURE_GPU) ret = NVML_ERROR_NOT_SUPPORTED;
    else if ((ret = tick_field(d, F_TEMP, &v)) == NVML_SUCCESS) *temp = (unsigned int)v;
    END_DEVICE
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, unsigned int type,
                                    unsigned int *clock) {
    BEGIN_DEVICE(device)
    unsigned long long v;
    if (clock == NULL) ret = NVML_ERROR_INVALID_ARGUMENT;
    else if (type != NVML_CLOCK_SM) ret = NVML_ERROR_NOT_SUPPORTED;
    else if ((ret = tick_field(d, F_SM_CLOCK, &v)) == NVML_SUCCESS) *clock = (unsigned int)v;
    END_DEVICE
}

static nvmlReturn_t power_limit(struct fake_device *d, unsigned int *limit) {
    if (limit == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (!d->has_power_limit) return NVML_ERROR_NOT_SUPPORTED;
    *limit = d->power_limit_mw;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) {
    BEGIN_DEVICE(device)
    ret = power_limit(d, limit);
    END_DEVICE
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit) {
    BEGIN_DEVICE(device)
    ret = power_limit(d, limit);
    END_DEVICE
}

/* NVML's two-call protocol: too small a buffer (or NULL) gives the count and
 * INSUFFICIENT_SIZE, or SUCCESS when there is nothing to list. */
static nvmlReturn_t list_processes(struct fake_device *d, int graphics, unsigned int *count,
                                   nvmlProcessInfo_t *infos) {
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    int dev = (int)(d - devices);
    unsigned int n = 0;
    for (int i = 0; i < nprocs; i++)
        if (procs[i].device == dev && procs[i].graphics == graphics) n++;
    if (infos == NULL || *count < n) {
        *count = n;
        return n == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned int j = 0;
    for (int i = 0; i < nprocs; i++) {
        if (procs[i].device != dev || procs[i].graphics != graphics) continue;
        infos[j].pid = procs[i].pid;
        infos[j].usedGpuMemory = procs[i].used;
        infos[j].gpuInstanceId = 0xFFFFFFFFu;
        infos[j].computeInstanceId = 0xFFFFFFFFu;
        j++;
    }
    *count = n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                                     unsigned int *count,
                                                     nvmlProcessInfo_t *infos) {
    BEGIN_DEVICE(device)
    ret = list_processes(d, 0, count, infos);
    END_DEVICE
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device,
                                                      unsigned int *count,
                                                      nvmlProcessInfo_t *infos) {
    BEGIN_DEVICE(device)
    ret = list_processes(d, 1, count, infos);
    END_DEVICE
}
