using System.Globalization;
using System.Text;

namespace PowerRetention.Benchmarks;

/// <summary>A minimal SVG line chart with logarithmic axes, so the benchmark needs no plotting package.</summary>
public static class SvgPlot
{
    private const int Width = 760, Height = 460, Left = 90, Right = 200, Top = 40, Bottom = 60;
    private static readonly string[] s_colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

    public static string LogLog(string title, string xLabel, string yLabel, IReadOnlyList<(string Name, List<(int X, double Y)> Points)> series)
    {
        var points = series.SelectMany(s => s.Points).ToList();
        double xMin = Math.Floor(Math.Log10(points.Min(p => p.X))), xMax = Math.Ceiling(Math.Log10(points.Max(p => p.X)));
        double yMin = Math.Floor(Math.Log10(points.Min(p => p.Y))), yMax = Math.Ceiling(Math.Log10(points.Max(p => p.Y)));
        double plotWidth = Width - Left - Right, plotHeight = Height - Top - Bottom;
        double X(double x) => Left + ((Math.Log10(x) - xMin) / (xMax - xMin) * plotWidth);
        double Y(double y) => Top + plotHeight - ((Math.Log10(y) - yMin) / (yMax - yMin) * plotHeight);
        static string F(double v) => v.ToString("F1", CultureInfo.InvariantCulture);

        var svg = new StringBuilder();
        svg.AppendLine(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" font-family=\"sans-serif\" font-size=\"12\">");
        svg.AppendLine(CultureInfo.InvariantCulture, $"<rect width=\"{Width}\" height=\"{Height}\" fill=\"white\"/>");
        svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{Width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{title}</text>");

        // Grid lines and labels at each power of ten.
        for (double e = xMin; e <= xMax; e++)
        {
            double x = X(Math.Pow(10, e));
            svg.AppendLine(CultureInfo.InvariantCulture, $"<line x1=\"{F(x)}\" y1=\"{Top}\" x2=\"{F(x)}\" y2=\"{Top + plotHeight}\" stroke=\"#ddd\"/>");
            svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{F(x)}\" y=\"{Top + plotHeight + 18}\" text-anchor=\"middle\">1e{e}</text>");
        }

        for (double e = yMin; e <= yMax; e++)
        {
            double y = Y(Math.Pow(10, e));
            svg.AppendLine(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{F(y)}\" x2=\"{Left + plotWidth}\" y2=\"{F(y)}\" stroke=\"#ddd\"/>");
            svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{Left - 8}\" y=\"{F(y + 4)}\" text-anchor=\"end\">1e{e}</text>");
        }

        svg.AppendLine(CultureInfo.InvariantCulture, $"<rect x=\"{Left}\" y=\"{Top}\" width=\"{plotWidth}\" height=\"{plotHeight}\" fill=\"none\" stroke=\"black\"/>");
        svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{Left + (plotWidth / 2)}\" y=\"{Height - 15}\" text-anchor=\"middle\">{xLabel}</text>");
        svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"20\" y=\"{Top + (plotHeight / 2)}\" text-anchor=\"middle\" transform=\"rotate(-90 20 {Top + (plotHeight / 2)})\">{yLabel}</text>");

        for (int s = 0; s < series.Count; s++)
        {
            string color = s_colors[s % s_colors.Length];
            string path = string.Join(" ", series[s].Points.OrderBy(p => p.X).Select(p => $"{F(X(p.X))},{F(Y(p.Y))}"));
            svg.AppendLine(CultureInfo.InvariantCulture, $"<polyline points=\"{path}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>");
            foreach ((int x, double y) in series[s].Points)
            {
                svg.AppendLine(CultureInfo.InvariantCulture, $"<circle cx=\"{F(X(x))}\" cy=\"{F(Y(y))}\" r=\"3.5\" fill=\"{color}\"/>");
            }

            double legendY = Top + 20 + (s * 22);
            svg.AppendLine(CultureInfo.InvariantCulture, $"<line x1=\"{Left + plotWidth + 15}\" y1=\"{F(legendY)}\" x2=\"{Left + plotWidth + 40}\" y2=\"{F(legendY)}\" stroke=\"{color}\" stroke-width=\"2\"/>");
            svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{Left + plotWidth + 45}\" y=\"{F(legendY + 4)}\">{series[s].Name}</text>");
        }

        svg.AppendLine("</svg>");
        return svg.ToString();
    }
}
