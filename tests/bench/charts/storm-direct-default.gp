set terminal pngcairo size 1200,700 font 'sans,11'
set output '/work/main/tests/bench/charts/storm-direct-default.png'
set title "direct-default: 19500 connects to one destination in 5.685 s, 0 errors\n1 source address(es), port range 40000-59999, p50 0.0207 ms, p99 0.6606 ms"
set xlabel 'connection index (order of completion)'
set ylabel 'connect() latency in the process (ms, log scale)'
set logscale y
set format y '%g'
set grid ytics mytics lc rgb '#dddddd'
set key top left box opaque
set xrange [0:19501]
plot '/work/main/tests/bench/charts/storm-direct-default.dat' using 1:($3 == 0 ? $2 : NaN) with points pt 7 ps 0.3 lc rgb '#1f77b4' title 'even local port: 10000, avg 0.018 ms, max 1.02 ms', \
     '' using 1:($3 == 1 ? $2 : NaN) with points pt 7 ps 0.3 lc rgb '#d62728' title 'odd local port: 9500, avg 0.579 ms, max 1.14 ms'
