using System.Diagnostics;

namespace PowerRetention.Cli;

/// <summary>
/// Shows the progress of one computation on the error stream, as a bar redrawn in place or as plain lines.
/// Nothing is shown before <see cref="CliSettings.ProgressDelay"/> has passed. Plain lines are printed
/// each time progress crosses another 10% or <see cref="CliSettings.ProgressLineInterval"/> has passed
/// since the previous line. <see cref="Report"/> may be called from several threads at once.
/// </summary>
internal sealed class ProgressDisplay : IProgress<long>
{
    private const int BarWidth = 30;
    private static readonly TimeSpan s_barRedrawInterval = TimeSpan.FromMilliseconds(150);

    private readonly TextWriter _writer;
    private readonly CliSettings _settings;
    private readonly string _label;
    private readonly long _total;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _gate = new();
    private long _done;
    private TimeSpan _lastShown;
    private int _lastTenth = -1;
    private int _barLength;
    private bool _finished;

    /// <param name="writer">Usually the error stream.</param>
    /// <param name="settings">Style and timing.</param>
    /// <param name="label">Prefix naming the computation, such as "run" or "bench warm-up".</param>
    /// <param name="total">Token-heads in the whole computation.</param>
    public ProgressDisplay(TextWriter writer, CliSettings settings, string label, long total)
    {
        _writer = writer;
        _settings = settings;
        _label = label;
        _total = Math.Max(1, total);
    }

    /// <summary>Records that <paramref name="value"/> token-heads are done and redraws when due.</summary>
    public void Report(long value)
    {
        if (_settings.Progress == ProgressStyle.None)
        {
            return;
        }

        lock (_gate)
        {
            // Workers report totals from several threads, so a smaller total can arrive late.
            _done = Math.Max(_done, Math.Min(value, _total));
            TimeSpan now = _clock.Elapsed;
            if (_finished || now < _settings.ProgressDelay)
            {
                return;
            }

            if (_settings.Progress == ProgressStyle.Bar)
            {
                if (_barLength == 0 || now - _lastShown >= s_barRedrawInterval || _done == _total)
                {
                    DrawBar(now);
                }

                return;
            }

            int tenth = (int)(_done * 10 / _total);
            if (tenth > _lastTenth || now - _lastShown >= _settings.ProgressLineInterval)
            {
                WriteLine(now, tenth);
            }
        }
    }

    /// <summary>Removes the bar, or prints a last line when lines were printed and the last one was below 100%.</summary>
    public void Finish()
    {
        lock (_gate)
        {
            if (_finished)
            {
                return;
            }

            _finished = true;
            if (_settings.Progress == ProgressStyle.Bar && _barLength > 0)
            {
                _writer.Write("\r" + new string(' ', _barLength) + "\r");
                _writer.Flush();
            }
            else if (_settings.Progress == ProgressStyle.Lines && _lastTenth >= 0 && _lastTenth < 10 && _done == _total)
            {
                WriteLine(_clock.Elapsed, 10);
            }
        }
    }

    private void DrawBar(TimeSpan now)
    {
        double fraction = (double)_done / _total;
        int filled = (int)(fraction * BarWidth);
        string bar = new string('#', filled) + new string('-', BarWidth - filled);
        string text = Units.Invariant($"{_label} [{bar}] {fraction * 100,5:0.0}%  {Units.Rate(Rate(now))} token-heads/s  ETA {Eta(now)}");
        int padding = Math.Max(0, _barLength - text.Length);
        _writer.Write("\r" + text + new string(' ', padding));
        _writer.Flush();
        _barLength = text.Length;
        _lastShown = now;
    }

    private void WriteLine(TimeSpan now, int tenth)
    {
        double percent = 100.0 * _done / _total;
        _writer.WriteLine(Units.Invariant($"{_label}: {percent:0}% ({_done:N0} of {_total:N0} token-heads), {Units.Rate(Rate(now))} token-heads/s, ETA {Eta(now)}"));
        _writer.Flush();
        _lastTenth = tenth;
        _lastShown = now;
    }

    private double Rate(TimeSpan now) => now.TotalSeconds > 0 ? _done / now.TotalSeconds : 0;

    private string Eta(TimeSpan now)
    {
        double rate = Rate(now);
        return rate > 0 ? Units.Clock(TimeSpan.FromSeconds((_total - _done) / rate)) : "?";
    }
}
