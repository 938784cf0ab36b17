package dev.gradclip.bench;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import javax.imageio.ImageIO;

/**
 * The benchmark history: one CSV row per benchmark per run, and one PNG chart per benchmark.
 *
 * <pre>
 * java -cp benchmarks.jar dev.gradclip.bench.History append DIR RUN.json [--label L] [--commit C] [--min-effect 0.05]
 * java -cp benchmarks.jar dev.gradclip.bench.History chart DIR [--min-effect 0.05]
 * </pre>
 *
 * DIR/history.csv gets: UTC time, label, commit, JDK, CPU model, benchmark, metric ({@code cpu}: CPU time
 * per op from {@link CpuTimeProfiler}, where the run has it; else {@code wall}), forks, and the median,
 * first and third quartile of the per-fork medians (each fork's median over its iterations). The charts,
 * DIR/&lt;benchmark&gt;.png, show each run's median with its quartile bar, and the baseline band: the median
 * of up to {@value #BASELINE_RUNS} runs before the latest, plus and minus the minimum effect. A point above
 * the band is worth a gate run; the chart itself is not a test. Drawn with the JDK's own Java2D, so bench
 * needs no charting dependency.
 */
public final class History {

    static final int BASELINE_RUNS = 10;
    static final String HEADER = "time_utc,label,commit,jdk,cpu,benchmark,metric,forks,median_ns,q1_ns,q3_ns";

    record Point(String time, String label, String commit, String jdk, String cpu, String benchmark, String metric,
            int forks, double median, double q1, double q3) {}

    private History() {}

    public static void main(String[] args) throws IOException {
        if (args.length < 2 || !(args[0].equals("append") && args.length >= 3 || args[0].equals("chart"))) {
            System.err.println("usage: History append DIR RUN.json [--label L] [--commit C] [--min-effect 0.05]"
                    + " | History chart DIR [--min-effect 0.05]");
            System.exit(2);
        }
        Path dir = Path.of(args[1]);
        int first = args[0].equals("append") ? 3 : 2;
        Map<String, String> options = new LinkedHashMap<>();
        for (int i = first; i + 1 < args.length; i += 2) {
            options.put(args[i].replaceFirst("^--", ""), args[i + 1]);
        }
        double minEffect = Double.parseDouble(options.getOrDefault("min-effect", String.valueOf(Results.MIN_EFFECT)));
        if (args[0].equals("append")) {
            Path run = Path.of(args[2]);
            String commit = options.getOrDefault("commit", "-");
            append(dir, run, options.getOrDefault("label", commit), commit, Results.read(run), minEffect);
        } else {
            chart(dir, minEffect);
        }
    }

    /** From the gate: B's run, labelled with its revision or JDK. */
    static void append(Path dir, Path run, String label, List<Results.Row> rows) throws IOException {
        append(dir, run, label, label, rows, Results.MIN_EFFECT);
    }

    static void append(Path dir, Path run, String label, String commit, List<Results.Row> rows, double minEffect)
            throws IOException {
        Files.createDirectories(dir);
        Path csv = dir.resolve("history.csv");
        StringBuilder lines = new StringBuilder(Files.exists(csv) ? "" : HEADER + "\n");
        String time = Instant.now().truncatedTo(ChronoUnit.SECONDS).toString();
        String cpu = cpuModel();
        for (Results.Row row : rows) {
            // The gate's metric where the run has it. The spread between forks; one fork has none, and its bar
            // collapses to its point.
            boolean cpuTime = row.cpuForks().length > 0;
            double[] spread = row.samples(cpuTime);
            lines.append(String.join(",", time, clean(label), clean(commit), clean(row.jdk()), clean(cpu),
                    clean(row.key()), cpuTime ? "cpu" : "wall", String.valueOf(spread.length),
                    String.format(Locale.ROOT, "%.1f,%.1f,%.1f", Stats.median(spread),
                            Stats.quantile(spread, 0.25), Stats.quantile(spread, 0.75)))).append('\n');
        }
        Files.writeString(csv, lines, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        System.err.println("history: " + rows.size() + " rows appended to " + csv + " (" + run + ")");
        chart(dir, minEffect);
    }

    static List<Point> read(Path csv) throws IOException {
        List<Point> points = new ArrayList<>();
        for (String line : Files.readAllLines(csv)) {
            if (line.isBlank() || line.startsWith("time_utc")) {
                continue;
            }
            String[] f = line.split(",", -1);
            points.add(new Point(f[0], f[1], f[2], f[3], f[4], f[5], f[6], Integer.parseInt(f[7]), Double.parseDouble(f[8]),
                    Double.parseDouble(f[9]), Double.parseDouble(f[10])));
        }
        return points;
    }

    /** One PNG per benchmark in DIR/history.csv. */
    static void chart(Path dir, double minEffect) throws IOException {
        Map<String, List<Point>> byBenchmark = new LinkedHashMap<>();
        for (Point point : read(dir.resolve("history.csv"))) {
            byBenchmark.computeIfAbsent(point.benchmark() + " " + point.metric(), k -> new ArrayList<>()).add(point);
        }
        for (Map.Entry<String, List<Point>> entry : byBenchmark.entrySet()) {
            Path png = dir.resolve(entry.getKey().replaceAll("[^A-Za-z0-9.-]+", "_") + ".png");
            ImageIO.write(draw(entry.getKey(), entry.getValue(), minEffect), "png", png.toFile());
            System.err.println("history: chart " + png);
        }
    }

    static BufferedImage draw(String benchmark, List<Point> points, double minEffect) {
        int width = 960;
        int height = 480;
        int left = 90;
        int right = 30;
        int top = 70;
        int bottom = 90;
        BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = image.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, width, height);

        // The baseline: runs before the latest, so that the latest is judged against the band, not part of it.
        int latest = points.size() - 1;
        double[] previous = points.subList(Math.max(0, latest - BASELINE_RUNS), Math.max(latest, 1)).stream()
                .mapToDouble(Point::median).toArray();
        double baseline = Stats.median(previous);
        double low = baseline * (1 - minEffect);
        double high = baseline * (1 + minEffect);
        double min = low;
        double max = high;
        for (Point p : points) {
            min = Math.min(min, p.q1());
            max = Math.max(max, p.q3());
        }
        double pad = (max - min) * 0.08;
        double yMin = Math.max(0, min - pad);
        double yMax = max + pad;
        double scale = max >= 1e6 ? 1e6 : max >= 1e3 ? 1e3 : 1;
        String unit = scale == 1e6 ? "ms" : scale == 1e3 ? "µs" : "ns";
        int plotW = width - left - right;
        int plotH = height - top - bottom;
        java.util.function.DoubleUnaryOperator y = v -> top + plotH * (yMax - v) / (yMax - yMin);
        java.util.function.IntUnaryOperator x = i -> left + (points.size() == 1 ? plotW / 2
                : (int) Math.round(plotW * (i + 0.5) / points.size()));

        g.setColor(new Color(0xD8EFD8));
        g.fillRect(left, (int) y.applyAsDouble(high), plotW, (int) (y.applyAsDouble(low) - y.applyAsDouble(high)));
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        g.setColor(Color.GRAY);
        for (int t = 0; t <= 5; t++) {
            double v = yMin + (yMax - yMin) * t / 5;
            int py = (int) y.applyAsDouble(v);
            g.drawLine(left - 4, py, left, py);
            g.drawString(String.format(Locale.ROOT, "%.3g", v / scale), 8, py + 4);
        }
        g.drawRect(left, top, plotW, plotH);
        g.setColor(new Color(0x2E7D32));
        g.setStroke(new BasicStroke(1.5f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10, new float[] {6, 4}, 0));
        g.drawLine(left, (int) y.applyAsDouble(baseline), left + plotW, (int) y.applyAsDouble(baseline));

        g.setStroke(new BasicStroke(1.5f));
        // Labels about 80 pixels wide: skip some rather than overlap them.
        int labelEvery = Math.max(1, (int) Math.ceil(80.0 * points.size() / plotW));
        for (int i = 0; i < points.size(); i++) {
            Point p = points.get(i);
            int px = x.applyAsInt(i);
            boolean outside = p.median() > high || p.median() < low;
            g.setColor(outside ? new Color(0xC62828) : new Color(0x1565C0));
            g.drawLine(px, (int) y.applyAsDouble(p.q1()), px, (int) y.applyAsDouble(p.q3()));
            int py = (int) y.applyAsDouble(p.median());
            g.fillOval(px - 4, py - 4, 9, 9);
            if (i > 0) {
                g.setColor(new Color(0x90A4AE));
                g.drawLine(x.applyAsInt(i - 1), (int) y.applyAsDouble(points.get(i - 1).median()), px, py);
            }
            if (i == latest || i % labelEvery == 0 && latest - i >= labelEvery) {
                g.setColor(Color.DARK_GRAY);
                String label = p.label().length() > 12 ? p.label().substring(0, 12) : p.label();
                g.drawString(label, px - g.getFontMetrics().stringWidth(label) / 2, top + plotH + 18);
                String day = p.time().length() >= 16 ? p.time().substring(5, 16).replace('T', ' ') : p.time();
                g.drawString(day, px - g.getFontMetrics().stringWidth(day) / 2, top + plotH + 34);
            }
        }
        g.setColor(Color.BLACK);
        g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 15));
        g.drawString(benchmark + " time per op: median per run (" + unit + ")", left, 24);
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        g.drawString(String.format(Locale.ROOT, "bars: forks' quartiles; dashed: baseline (median of up to %d earlier runs);"
                + " band: ±%.0f%%; red: outside the band", BASELINE_RUNS, 100 * minEffect), left, 42);
        g.drawString("latest: " + points.get(latest).cpu() + ", " + points.get(latest).jdk(), left, 56);
        g.drawString("run (label, UTC time)", left + plotW / 2 - 60, height - 20);
        g.dispose();
        return image;
    }

    static String cpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim() + " x" + Runtime.getRuntime().availableProcessors();
                }
            }
        } catch (IOException | RuntimeException e) {
            // Not Linux: the OS architecture is the best there is.
        }
        return System.getProperty("os.arch") + " x" + Runtime.getRuntime().availableProcessors();
    }

    private static String clean(String field) {
        return field.replace(',', ';').replace('\n', ' ');
    }
}
