#include "process.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace egress {
namespace {

prometheus::MetricFamily gauge(const char* name, const char* help, double value,
                               prometheus::MetricType type = prometheus::MetricType::Gauge) {
    prometheus::ClientMetric m;
    if (type == prometheus::MetricType::Counter) m.counter.value = value;
    else m.gauge.value = value;
    return prometheus::MetricFamily{name, help, type, {m}};
}

double open_fds() {
    double n = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
        while (dirent* e = readdir(d))
            if (e->d_name[0] != '.') ++n;
        closedir(d);
        --n;  // the descriptor opendir itself holds
    }
    return n;
}

// Fields of /proc/self/stat after the command name: index 0 is field 3.
std::vector<std::string> stat_fields() {
    std::ifstream in("/proc/self/stat");
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream rest(s.substr(s.rfind(')') + 2));
    std::vector<std::string> f;
    for (std::string x; rest >> x;) f.push_back(x);
    return f;
}

double boot_time() {
    std::ifstream in("/proc/stat");
    for (std::string key; in >> key;) {
        if (key == "btime") {
            double t = 0;
            in >> t;
            return t;
        }
        in.ignore(1 << 16, '\n');
    }
    return 0;
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
    std::vector<prometheus::MetricFamily> out;
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    const auto f = stat_fields();
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    out.push_back(gauge("process_open_fds", "Number of open file descriptors.", open_fds()));
    out.push_back(gauge("process_max_fds", "Maximum number of open file descriptors.",
                        static_cast<double>(lim.rlim_cur)));
    if (f.size() > 21) {
        // Fields 14/15: utime/stime in ticks; 22: start time in ticks after boot; 24: RSS in pages.
        out.push_back(gauge("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                            (std::stod(f[11]) + std::stod(f[12])) / tick, prometheus::MetricType::Counter));
        out.push_back(gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                            boot_time() + std::stod(f[19]) / tick));
        out.push_back(gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                            std::stod(f[21]) * static_cast<double>(sysconf(_SC_PAGESIZE))));
    }
    return out;
}

}  // namespace egress
