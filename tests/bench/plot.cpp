// plot: the published experiment's chart (per-connect latency against
// connection index, coloured by local port parity) for direct-default and
// broker, and a CDF of live connect latency for hol; PNGs drawn by gnuplot.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.hpp"
#include "pool/selection.hpp"
#include "runs.hpp"

namespace egress::bench {
namespace {

namespace fs = std::filesystem;

// gnuplot's full path from --gnuplot or PATH; empty when there is none.
std::string find_gnuplot(const Args& a) {
    if (a.has("gnuplot")) return ::access(a.get("gnuplot", "").c_str(), X_OK) == 0 ? a.get("gnuplot", "") : "";
    std::stringstream path(std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin");
    for (std::string dir; std::getline(path, dir, ':');)
        if (!dir.empty() && ::access((dir + "/gnuplot").c_str(), X_OK) == 0) return dir + "/gnuplot";
    return "";
}

// Runs `gnuplot script`; throws with its exit status and error output on failure.
void run_gnuplot(const std::string& gnuplot, const fs::path& script) {
    const auto log = fs::path(script).replace_extension(".log");
    Child c = spawn({gnuplot, script.string()}, log.string());
    c.in.reset();
    while (!read_line(c).empty()) {
    }
    int st = 0;
    ::waitpid(c.pid, &st, 0);
    c.pid = -1;
    std::ifstream in(log);
    std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        throw std::runtime_error("gnuplot failed on " + script.string() + " (" +
                                 (WIFEXITED(st) ? "exit " + std::to_string(WEXITSTATUS(st))
                                                : "signal " + std::to_string(WTERMSIG(st))) +
                                 "): " + (err.empty() ? "no output" : err));
    fs::remove(log);
}

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p);
    out << text;
    if (!out.flush()) throw std::runtime_error("cannot write " + p.string());
}

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

// Latency by connection index, one colour per port parity, log y.
// Returns the PNG written.
fs::path storm_chart(const std::string& gnuplot, const fs::path& out, const std::string& name, const json& run) {
    std::string dat = "# connection_index latency_ms odd_port\n";
    std::size_t i = 0;
    for (const auto& s : run["series"]) dat += std::to_string(++i) + " " + fmt("%.4f", s[0].get<double>()) + " " + s[1].dump() + "\n";
    write_file(out / (name + ".dat"), dat);
    const auto& even = run["even"];
    const auto& odd = run["odd"];
    auto legend = [](const char* side, const json& s) {
        return std::string(side) + " local port: " + s["count"].dump() +
               (s["count"] == 0 ? "" : ", avg " + fmt("%.3f", s["avg"]) + " ms, max " + fmt("%.2f", s["max"]) + " ms");
    };
    std::string how = run["mode"].get<std::string>();
    if (run.contains("strategy")) how += " (pool strategy " + run["strategy"].get<std::string>() + ")";
    const std::string title = how + ": " + run["attempts"].dump() + " connects to one destination in " +
                              fmt("%.3f", run["total_s"]) + " s, " + run["errored"].dump() + " errors\\n" +
                              run["sources_configured"].dump() + " source address(es), port range " +
                              run["range"].get<std::string>() + ", p50 " +
                              fmt("%.4f", run["latency_ms"].value("p50", 0.0)) + " ms, p99 " +
                              fmt("%.4f", run["latency_ms"].value("p99", 0.0)) + " ms";
    std::string gp = "set terminal pngcairo size 1200,700 font 'sans,11'\n";
    gp += "set output '" + (out / (name + ".png")).string() + "'\n";
    gp += "set title \"" + title + "\"\n";
    gp += "set xlabel 'connection index (order of completion)'\n";
    gp += run["mode"] == "broker" ? "set ylabel 'connect latency measured by egressd (ms, log scale)'\n"
                                  : "set ylabel 'connect() latency in the process (ms, log scale)'\n";
    gp += "set logscale y\nset format y '%g'\nset grid ytics mytics lc rgb '#dddddd'\n";
    gp += "set key top left box opaque\nset xrange [0:" + std::to_string(i + 1) + "]\n";
    gp += "plot '" + (out / (name + ".dat")).string() + "' using 1:($3 == 0 ? $2 : NaN) with points pt 7 ps 0.3 " +
          "lc rgb '#1f77b4' title '" + legend("even", even) + "', \\\n";
    gp += "     '' using 1:($3 == 1 ? $2 : NaN) with points pt 7 ps 0.3 lc rgb '#d62728' title '" + legend("odd", odd) +
          "'\n";
    write_file(out / (name + ".gp"), gp);
    run_gnuplot(gnuplot, out / (name + ".gp"));
    return out / (name + ".png");
}

// Cumulative distribution of live connect latency, one curve per pending level.
fs::path hol_chart(const std::string& gnuplot, const fs::path& out, const std::vector<json>& runs) {
    std::string dat, plots;
    int block = 0;
    for (const auto& run : runs) {
        auto lat = run["series"].get<std::vector<double>>();
        std::sort(lat.begin(), lat.end());
        dat += "# pending " + run["pending"].dump() + ": latency_ms cumulative_fraction\n";
        for (std::size_t i = 0; i < lat.size(); ++i)
            dat += fmt("%.4f", lat[i]) + " " + fmt("%.5f", static_cast<double>(i + 1) / static_cast<double>(lat.size())) +
                   "\n";
        dat += "\n\n";
        const auto& l = run["latency_ms"];
        plots += std::string(plots.empty() ? "plot " : ", \\\n     ") + "'" + (out / "hol-cdf.dat").string() +
                 "' index " + std::to_string(block++) + " using 1:2 with steps lw 2 title '" + run["pending"].dump() +
                 " pending: p50 " + fmt("%.3f", l["p50"]) + " ms, p99 " + fmt("%.3f", l["p99"]) + " ms, max " +
                 fmt("%.2f", l["max"]) + " ms, " + run["live_errors"].dump() + " errors'";
    }
    write_file(out / "hol-cdf.dat", dat);
    const auto& first = runs.front();
    std::string gp = "set terminal pngcairo size 1200,700 font 'sans,11'\n";
    gp += "set output '" + (out / "hol-cdf.png").string() + "'\n";
    gp += "set title \"hol: live connects through egressd, one at a time, while P connects hang on a black hole\\n" +
          first["live"].dump() + " live connects per level, black-hole deadline " + first["deadline_ms"].dump() +
          " ms\"\n";
    gp += "set xlabel 'live connect latency, request to reply (ms, log scale)'\n";
    gp += "set ylabel 'fraction of live connects'\n";
    gp += "set logscale x\nset format x '%g'\nset yrange [0:1.02]\nset grid lc rgb '#dddddd'\n";
    gp += "set key bottom right box opaque\n" + plots + "\n";
    write_file(out / "hol-cdf.gp", gp);
    run_gnuplot(gnuplot, out / "hol-cdf.gp");
    return out / "hol-cdf.png";
}

bool failed(const json& j) {
    return j.contains("error") || j.value("errored", 0ULL) > 0 || j.value("live_errors", 0ULL) > 0;
}

}  // namespace

int cmd_plot(const Args& a) {
    if (!a.has("out")) usage("plot needs --out DIR");
    const fs::path out = fs::absolute(a.get("out", ""));
    const auto strategy = a.get("strategy", "window");
    if (!parse_port_strategy(strategy)) usage("unknown --strategy '" + strategy + "'");
    const auto levels = number_list(a, "pending", "0,100,1000,10000");
    for (auto p : levels)
        if (p > 15000) usage("--pending above 15000 would pass egressd's open-files cap here");
    // Before minutes of runs: no chart can be drawn without gnuplot.
    const auto gnuplot = find_gnuplot(a);
    if (gnuplot.empty()) {
        std::fprintf(stderr, "egress-bench plot: gnuplot not found (%s); install the Debian package gnuplot-nox "
                             "(scripts/install-deps.sh does)\n",
                     a.has("gnuplot") ? ("--gnuplot " + a.get("gnuplot", "") + " is not executable").c_str()
                                      : "not in PATH");
        return 1;
    }
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec || !fs::is_directory(out)) {
        std::fprintf(stderr, "egress-bench plot: cannot create --out %s: %s\n", out.c_str(), ec.message().c_str());
        return 1;
    }

    const json direct = in_child([&] { return storm_once(a, Mode::direct_default, "", true); });
    const json broker = in_child([&] { return storm_once(a, Mode::broker, strategy, true); });
    std::vector<json> hol;
    for (auto p : levels) hol.push_back(in_child([&] { return hol_once(a, p, true); }));

    int rc = 0;
    try {
        for (const auto& [name, run] : {std::pair{std::string("storm-direct-default"), &direct},
                                        std::pair{"storm-broker-" + strategy, &broker}}) {
            if (run->contains("error")) throw std::runtime_error(name + ": " + (*run)["error"].get<std::string>());
            std::printf("%s: %s\n", storm_chart(gnuplot, out, name, *run).c_str(),
                        ((*run)["attempts"].dump() + " connects in " + fmt("%.3f", (*run)["total_s"]) + " s, even " +
                         (*run)["even"]["count"].dump() + " avg " + fmt("%.4f", (*run)["even"].value("avg", 0.0)) +
                         " ms, odd " + (*run)["odd"]["count"].dump() + " avg " +
                         fmt("%.4f", (*run)["odd"].value("avg", 0.0)) + " ms, " + (*run)["errored"].dump() + " errors")
                            .c_str());
            rc |= failed(*run);
        }
        for (const auto& j : hol) {
            if (j.contains("error")) throw std::runtime_error("hol: " + j["error"].get<std::string>());
            rc |= failed(j) || j["black_hole_etimedout"] != j["pending"];
        }
        std::printf("%s:", hol_chart(gnuplot, out, hol).c_str());
        for (const auto& j : hol)
            std::printf(" [%s pending: p50 %.4f ms, p99 %.4f ms]", j["pending"].dump().c_str(),
                        j["latency_ms"].value("p50", 0.0), j["latency_ms"].value("p99", 0.0));
        std::printf("\n");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "egress-bench plot: %s\n", e.what());
        return 1;
    }
    return rc;
}

}  // namespace egress::bench
