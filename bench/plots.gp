# Plots of bench/run's results (bench/report.py writes the .dat files).
#     gnuplot -e "dat='bench/results'; out='docs'" bench/plots.gp
# Every plot has one column per side (plain, then each shim mode measured),
# so a new mode appears without a change here.
set terminal pngcairo size 900,520 font "DejaVu Sans,11" noenhanced
set key top right
set grid ytics

# Throughput and connection rate: requests per second per case and side.
set output out."/bench-throughput.png"
set title "Requests per second (wrk, median of the rounds): plain and under the shim"
set ylabel "thousand requests/s"
set yrange [0:*]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
n = words(system("head -n1 ".dat."/throughput.dat"))
plot for [i=2:n] dat."/throughput.dat" using i:xtic(1) title columnheader(i)

# Cancel latency: CDF of client close -> blocked call's return.
set output out."/bench-cancel-cdf.png"
set title "Cancel latency: client close to the blocked call's ECANCELED (CDF)"
set style data lines
set logscale x
set xlabel "microseconds (log scale)"
set ylabel "fraction of aborts"
set key bottom right
set yrange [0:1]
n = words(system("head -n1 ".dat."/cancel_cdf.dat"))
plot for [i=2:n] dat."/cancel_cdf.dat" using i:1 title columnheader(i) lw 2
unset logscale x
unset xlabel
set yrange [*:*]
set key top right

# Wasted work after the abort: boxes at explicit positions, calls on the left
# axis and CPU seconds on the right.
set output out."/bench-wasted-work.png"
set title "Work done after the client aborted (all aborted requests of the run)"
set ylabel "upstream calls"
set y2label "CPU seconds"
set yrange [0:*]
set y2range [0:*]
set y2tics
set ytics nomirror
m = int(system("wc -l < ".dat."/wasted.dat")) - 1
set xrange [-0.6:m - 0.4]
set style fill solid 0.8 border -1
plot dat."/wasted.dat" skip 1 using ($0 - 0.2):2:(0.4):xtic(1) with boxes title "upstream calls after abort" axes x1y1, \
     "" skip 1 using ($0 + 0.2):3:(0.4) with boxes title "CPU seconds after abort" axes x1y2
unset y2tics
unset y2label
set ytics mirror
set xrange [*:*]
set style data histograms

# Start-up cost for programs that never accept.
set output out."/bench-startup.png"
set title "Programs that never accept: wall time (hyperfine, median)"
set ylabel "milliseconds"
set yrange [0:*]
n = words(system("head -n1 ".dat."/startup.dat"))
plot for [i=2:n] dat."/startup.dat" using i:xtic(1) title columnheader(i)
