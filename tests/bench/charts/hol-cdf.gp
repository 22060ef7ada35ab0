set terminal pngcairo size 1200,700 font 'sans,11'
set output '/work/main/tests/bench/charts/hol-cdf.png'
set title "hol: live connects through egressd, one at a time, while P connects hang on a black hole\n1000 live connects per level, black-hole deadline 3000 ms"
set xlabel 'live connect latency, request to reply (ms, log scale)'
set ylabel 'fraction of live connects'
set logscale x
set format x '%g'
set yrange [0:1.02]
set grid lc rgb '#dddddd'
set key bottom right box opaque
plot '/work/main/tests/bench/charts/hol-cdf.dat' index 0 using 1:2 with steps lw 2 title '0 pending: p50 0.035 ms, p99 0.172 ms, max 1.05 ms, 0 errors', \
     '/work/main/tests/bench/charts/hol-cdf.dat' index 1 using 1:2 with steps lw 2 title '100 pending: p50 0.035 ms, p99 0.088 ms, max 1.34 ms, 0 errors', \
     '/work/main/tests/bench/charts/hol-cdf.dat' index 2 using 1:2 with steps lw 2 title '1000 pending: p50 0.034 ms, p99 0.175 ms, max 1.22 ms, 0 errors', \
     '/work/main/tests/bench/charts/hol-cdf.dat' index 3 using 1:2 with steps lw 2 title '10000 pending: p50 0.035 ms, p99 0.082 ms, max 1.11 ms, 0 errors'
