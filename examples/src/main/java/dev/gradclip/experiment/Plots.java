package dev.gradclip.experiment;

import dev.gradclip.experiment.Setup.Condition;
import dev.gradclip.experiment.TrainingRun.Result;
import java.awt.Color;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.BitmapEncoder.BitmapFormat;
import org.knowm.xchart.VectorGraphicsEncoder;
import org.knowm.xchart.VectorGraphicsEncoder.VectorGraphicsFormat;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.XYSeries.XYSeriesRenderStyle;
import org.knowm.xchart.style.Styler.LegendLayout;
import org.knowm.xchart.style.Styler.LegendPosition;
import org.knowm.xchart.style.lines.SeriesLines;
import org.knowm.xchart.style.markers.SeriesMarkers;

/** The experiment's plots, as PNG and SVG, with XChart (headless). */
final class Plots {

    private static final Color LOSS = new Color(0x1f77b4);
    private static final Color NORM = new Color(0xff7f0e);
    private static final Color EXPLODED = new Color(0xd62728);
    private static final Color TEST = new Color(0x2ca02c);

    private Plots() {}

    /**
     * Writes {@code success-rate.png/.svg} and, for each learning rate, one run per strategy in
     * {@code curves-lr<rate>.png}. The runs shown are fixed before the experiment: the longest
     * length, seed 0, so that no run is picked for how it came out. The curves have thousands of
     * points, which make multi-megabyte SVGs, so they are PNG only.
     */
    static void write(Path out, Setup setup, List<Result> results) throws IOException {
        CategoryChart success = successRate(setup, results);
        BitmapEncoder.saveBitmap(success, out.resolve("success-rate.png").toString(), BitmapFormat.PNG);
        VectorGraphicsEncoder.saveVectorGraphic(success, out.resolve("success-rate.svg").toString(), VectorGraphicsFormat.SVG);

        int longest = setup.lengths().getLast();
        for (double lr : setup.learningRates()) {
            Condition shown = new Condition(lr, longest);
            List<XYChart> curves = new ArrayList<>();
            for (Strategy strategy : Strategy.values()) {
                Result run = results.stream()
                        .filter(r -> r.strategy() == strategy && r.condition().equals(shown) && r.seed() == 0)
                        .findFirst().orElseThrow();
                curves.add(curves(run, setup.successMse()));
            }
            grid(curves, 2, out.resolve("curves-lr" + lr + ".png"));
        }
    }

    /** Grouped bars rather than lines, because strategies with equal rates would hide each other's lines. */
    private static CategoryChart successRate(Setup setup, List<Result> results) {
        CategoryChart chart = new CategoryChartBuilder().width(960).height(480)
                .title("Addition problem: share of " + setup.seeds() + " seeds reaching test MSE < " + setup.successMse())
                .xAxisTitle("sequence length T and SGD learning rate").yAxisTitle("success rate").build();
        chart.getStyler().setLegendPosition(LegendPosition.InsideNE);
        chart.getStyler().setYAxisMin(0.0).setYAxisMax(1.0);
        List<String> conditions = setup.conditions().stream().map(Condition::label).toList();
        for (Strategy strategy : Strategy.values()) {
            List<Double> rate = new ArrayList<>();
            for (Condition condition : setup.conditions()) {
                rate.add(results.stream().filter(r -> r.strategy() == strategy && r.condition().equals(condition))
                        .mapToDouble(r -> r.succeeded() ? 1 : 0).average().orElse(0));
            }
            chart.addSeries(strategy.label(), conditions, rate);
        }
        return chart;
    }

    /**
     * Loss and global gradient norm per step on a log scale, with the test error and the success
     * threshold. Exploding steps (norm above ten times
     * the threshold, or non-finite) are marked on the norm; a non-finite one at the top of the plot.
     */
    private static XYChart curves(Result run, double successMse) {
        XYChart chart = new XYChartBuilder().width(720).height(520)
                .title(String.format("%s clipping, %s, seed %d: %s", run.strategy().label(), run.condition().label(), run.seed(),
                        run.succeeded() ? "success at step " + run.stepsToSuccess() : run.diverged() ? "diverged" : "failed"))
                .xAxisTitle("step").yAxisTitle("log scale; grad norm before clipping").build();
        chart.getStyler().setYAxisLogarithmic(true);
        chart.getStyler().setLegendPosition(LegendPosition.OutsideS);
        chart.getStyler().setLegendLayout(LegendLayout.Horizontal);
        chart.getStyler().setLegendFont(chart.getStyler().getLegendFont().deriveFont(10f));
        chart.getStyler().setXAxisDecimalPattern("#");
        chart.getStyler().setMarkerSize(5);

        double top = 0;
        for (double norm : run.gradNorm()) {
            if (Double.isFinite(norm)) {
                top = Math.max(top, norm);
            }
        }
        List<Double> steps = new ArrayList<>();
        List<Double> loss = new ArrayList<>();
        List<Double> normSteps = new ArrayList<>();
        List<Double> norms = new ArrayList<>();
        List<Double> explodedSteps = new ArrayList<>();
        List<Double> explodedNorms = new ArrayList<>();
        for (int step = 0; step < run.steps(); step++) {
            double x = step + 1;
            double l = run.loss()[step];
            double n = run.gradNorm()[step];
            // A log axis has no place for zero or non-finite values.
            if (Double.isFinite(l) && l > 0) {
                steps.add(x);
                loss.add(l);
            }
            if (Double.isFinite(n) && n > 0) {
                normSteps.add(x);
                norms.add(n);
            }
            if (run.exploded(step)) {
                explodedSteps.add(x);
                explodedNorms.add(Double.isFinite(n) ? n : top);
            }
        }
        line(chart.addSeries("batch loss", steps, loss), LOSS);
        List<Double> evalSteps = new ArrayList<>();
        List<Double> testMse = new ArrayList<>();
        for (int k = 0; k < run.evalSteps().length; k++) {
            if (Double.isFinite(run.testCurve()[k]) && run.testCurve()[k] > 0) {
                evalSteps.add((double) run.evalSteps()[k]);
                testMse.add(run.testCurve()[k]);
            }
        }
        XYSeries test = chart.addSeries("test MSE", evalSteps, testMse);
        test.setMarker(SeriesMarkers.DIAMOND);
        test.setLineColor(TEST);
        test.setMarkerColor(TEST);
        test.setLineWidth(2f);
        XYSeries target = chart.addSeries("success", List.of(1.0, (double) run.steps()),
                List.of(successMse, successMse));
        target.setMarker(SeriesMarkers.NONE);
        target.setLineColor(Color.BLACK);
        target.setLineStyle(SeriesLines.DASH_DASH);
        line(chart.addSeries("grad norm", normSteps, norms), NORM);
        if (!explodedSteps.isEmpty()) {
            XYSeries marks = chart.addSeries("exploding (> 10 maxNorm)", explodedSteps, explodedNorms);
            marks.setXYSeriesRenderStyle(XYSeriesRenderStyle.Scatter);
            marks.setMarker(SeriesMarkers.CIRCLE);
            marks.setMarkerColor(EXPLODED);
        }
        return chart;
    }

    private static final Color BOUND = new Color(0x1f77b4);
    private static final Color AFTER = new Color(0x2ca02c);

    /**
     * {@code spikes-thresholds.png}: for each variant of the spike run, seed 0 (fixed before the
     * run), the global norm before clipping, the bound each step clipped to (where the strategy has
     * one), the norm after clipping, and the spike steps.
     */
    static void spikes(Path out, List<SpikeRun.Row> rows) throws IOException {
        List<XYChart> charts = new ArrayList<>();
        for (SpikeRun.Row row : rows) {
            Result run = row.runs().getFirst();
            XYChart chart = new XYChartBuilder().width(720).height(420)
                    .title(String.format("%s, %s, seed %d: %s", row.variant().label(), run.condition().label(), run.seed(),
                            run.succeeded() ? "success at step " + run.stepsToSuccess()
                                    : run.diverged() ? "diverged" : "failed"))
                    .xAxisTitle("step").yAxisTitle("global gradient norm (log scale)").build();
            chart.getStyler().setYAxisLogarithmic(true);
            chart.getStyler().setLegendPosition(LegendPosition.OutsideS);
            chart.getStyler().setLegendLayout(LegendLayout.Horizontal);
            chart.getStyler().setXAxisDecimalPattern("#");
            chart.getStyler().setMarkerSize(5);
            series(chart, "norm before clipping", run, run.gradNorm(), NORM);
            series(chart, "norm after clipping", run, run.clippedNorm(), AFTER);
            series(chart, "bound", run, run.bound(), BOUND);
            List<Double> x = new ArrayList<>();
            List<Double> y = new ArrayList<>();
            for (int step = 0; step < run.steps(); step++) {
                double n = run.gradNorm()[step];
                if (run.spiked()[step] && Double.isFinite(n) && n > 0) {
                    x.add(step + 1.0);
                    y.add(n);
                }
            }
            if (!x.isEmpty()) {
                XYSeries marks = chart.addSeries("spike (x" + (int) SpikeRun.SPIKES.factor() + ")", x, y);
                marks.setXYSeriesRenderStyle(XYSeriesRenderStyle.Scatter);
                marks.setMarker(SeriesMarkers.CIRCLE);
                marks.setMarkerColor(EXPLODED);
            }
            charts.add(chart);
        }
        grid(charts, 2, out.resolve("spikes-thresholds.png"));
    }

    /** Charts in rows of {@code columns}, as one PNG; a last row that is not full stays white on the right. */
    private static void grid(List<XYChart> charts, int columns, Path file) throws IOException {
        int width = charts.getFirst().getWidth();
        int height = charts.getFirst().getHeight();
        int rows = (charts.size() + columns - 1) / columns;
        java.awt.image.BufferedImage image = new java.awt.image.BufferedImage(columns * width, rows * height,
                java.awt.image.BufferedImage.TYPE_INT_RGB);
        java.awt.Graphics2D g = image.createGraphics();
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, image.getWidth(), image.getHeight());
        for (int k = 0; k < charts.size(); k++) {
            g.drawImage(BitmapEncoder.getBufferedImage(charts.get(k)), (k % columns) * width, (k / columns) * height, null);
        }
        g.dispose();
        if (!javax.imageio.ImageIO.write(image, "png", file.toFile())) {
            throw new IOException("no PNG writer for " + file);
        }
    }

    /**
     * The finite, positive values of one per-step series (a log axis has no place for the others): a
     * line, or points where fewer than half the steps have one (ZClip's bound is +Infinity but on
     * spikes, and a line would join the spikes across the steps between).
     */
    private static void series(XYChart chart, String name, Result run, double[] values, Color color) {
        List<Double> x = new ArrayList<>();
        List<Double> y = new ArrayList<>();
        for (int step = 0; step < run.steps(); step++) {
            if (Double.isFinite(values[step]) && values[step] > 0) {
                x.add(step + 1.0);
                y.add(values[step]);
            }
        }
        if (x.isEmpty()) {
            return;
        }
        XYSeries series = chart.addSeries(name, x, y);
        if (2 * x.size() >= run.steps()) {
            line(series, color);
        } else {
            series.setXYSeriesRenderStyle(XYSeriesRenderStyle.Scatter);
            series.setMarker(SeriesMarkers.DIAMOND);
            series.setMarkerColor(color);
        }
    }

    private static void line(XYSeries series, Color color) {
        series.setMarker(SeriesMarkers.NONE);
        series.setLineColor(color);
        series.setLineWidth(1f);
    }
}
