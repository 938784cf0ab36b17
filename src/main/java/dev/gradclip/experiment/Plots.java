package dev.gradclip.experiment;

import dev.gradclip.experiment.TrainingRun.Result;
import java.awt.Color;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.BitmapEncoder.BitmapFormat;
import org.knowm.xchart.VectorGraphicsEncoder;
import org.knowm.xchart.VectorGraphicsEncoder.VectorGraphicsFormat;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.XYSeries.XYSeriesRenderStyle;
import org.knowm.xchart.style.Styler.LegendPosition;
import org.knowm.xchart.style.markers.SeriesMarkers;

/** The experiment's plots, as PNG and SVG, with XChart (headless). */
final class Plots {

    private static final Color LOSS = new Color(0x1f77b4);
    private static final Color NORM = new Color(0xff7f0e);
    private static final Color EXPLODED = new Color(0xd62728);

    private Plots() {}

    /**
     * Writes {@code success-rate.png/.svg} and, for one run per strategy, {@code curves-STRATEGY.png/.svg}
     * plus all four in {@code curves.png}. The runs shown are fixed before the experiment: the
     * longest length, seed 0, so that no run is picked for how it came out.
     */
    static void write(Path out, Setup setup, List<Result> results) throws IOException {
        XYChart success = successRate(setup, results);
        save(success, out.resolve("success-rate"));

        int longest = setup.lengths().getLast();
        List<XYChart> curves = new ArrayList<>();
        for (Strategy strategy : Strategy.values()) {
            Result run = results.stream()
                    .filter(r -> r.strategy() == strategy && r.length() == longest && r.seed() == 0)
                    .findFirst().orElseThrow();
            XYChart chart = curves(run);
            save(chart, out.resolve("curves-" + strategy.label()));
            curves.add(chart);
        }
        BitmapEncoder.saveBitmap(curves, 2, 2, out.resolve("curves.png").toString(), BitmapFormat.PNG);
    }

    private static XYChart successRate(Setup setup, List<Result> results) {
        XYChart chart = new XYChartBuilder().width(720).height(480)
                .title("Addition problem: success rate of " + setup.seeds() + " seeds")
                .xAxisTitle("sequence length T").yAxisTitle("success rate").build();
        chart.getStyler().setLegendPosition(LegendPosition.InsideNE);
        chart.getStyler().setYAxisMin(0.0).setYAxisMax(1.0);
        chart.getStyler().setMarkerSize(8);
        double[] lengths = setup.lengths().stream().mapToDouble(Integer::doubleValue).toArray();
        for (Strategy strategy : Strategy.values()) {
            double[] rate = new double[lengths.length];
            for (int k = 0; k < lengths.length; k++) {
                int length = setup.lengths().get(k);
                rate[k] = results.stream().filter(r -> r.strategy() == strategy && r.length() == length)
                        .mapToDouble(r -> r.succeeded() ? 1 : 0).average().orElse(0);
            }
            chart.addSeries(strategy.label(), lengths, rate);
        }
        return chart;
    }

    /**
     * Loss and global gradient norm per step on a log scale. Exploding steps (norm above ten times
     * the threshold, or non-finite) are marked on the norm; a non-finite one at the top of the plot.
     */
    private static XYChart curves(Result run) {
        XYChart chart = new XYChartBuilder().width(720).height(480)
                .title(String.format("%s clipping, T=%d, seed %d: %s", run.strategy().label(), run.length(), run.seed(),
                        run.succeeded() ? "success at step " + run.stepsToSuccess() : run.diverged() ? "diverged" : "failed"))
                .xAxisTitle("step").yAxisTitle("log scale").build();
        chart.getStyler().setYAxisLogarithmic(true);
        chart.getStyler().setLegendPosition(LegendPosition.InsideNE);
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
        line(chart.addSeries("training loss", steps, loss), LOSS);
        line(chart.addSeries("global grad norm (before clipping)", normSteps, norms), NORM);
        if (!explodedSteps.isEmpty()) {
            XYSeries marks = chart.addSeries("exploding: norm > 10 x maxNorm or non-finite", explodedSteps, explodedNorms);
            marks.setXYSeriesRenderStyle(XYSeriesRenderStyle.Scatter);
            marks.setMarker(SeriesMarkers.CIRCLE);
            marks.setMarkerColor(EXPLODED);
        }
        return chart;
    }

    private static void line(XYSeries series, Color color) {
        series.setMarker(SeriesMarkers.NONE);
        series.setLineColor(color);
        series.setLineWidth(1f);
    }

    private static void save(XYChart chart, Path pathWithoutExtension) throws IOException {
        BitmapEncoder.saveBitmap(chart, pathWithoutExtension + ".png", BitmapFormat.PNG);
        VectorGraphicsEncoder.saveVectorGraphic(chart, pathWithoutExtension + ".svg", VectorGraphicsFormat.SVG);
    }
}
