//! Unit conversion for the `measurement_conversion` fast handler, and simple
//! arithmetic for `calculator`. Both parse the message for real; when a
//! message does not parse, they return `None` and the message goes to the
//! planner rather than getting a guess.
//!
//! Conversions cover length, mass, volume (US customary cups, pints,
//! quarts, gallons and fluid ounces), time up to weeks, and temperature
//! (Celsius, Fahrenheit, Kelvin), in these phrasings:
//! "how many X (are) in N Y", "what amount of X are in N Y",
//! "how many X is N Y", "(convert) N Y to/in/into X". `N` is a number
//! (`5`, `2.5`, `1,000`) or `a`/`an`/`one`…`ten`/`a hundred`/`a thousand`;
//! missing, it is 1.

use std::sync::LazyLock;

use regex::Regex;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dimension {
    Length,
    Mass,
    Volume,
    Time,
    Temperature,
}

/// A unit: dimension, size in the dimension's base unit (m, g, ml, s; for
/// temperature an index), singular and plural display names.
#[derive(Debug, Clone, Copy)]
struct Unit {
    dimension: Dimension,
    factor: f64,
    one: &'static str,
    many: &'static str,
}

const fn unit(dimension: Dimension, factor: f64, one: &'static str, many: &'static str) -> Unit {
    Unit {
        dimension,
        factor,
        one,
        many,
    }
}

use Dimension::*;

/// Spellings of each unit (after [`normalise`]) and the unit.
const UNITS: &[(&[&str], Unit)] = &[
    (
        &[
            "mm",
            "millimeter",
            "millimeters",
            "millimetre",
            "millimetres",
        ],
        unit(Length, 0.001, "millimetre", "millimetres"),
    ),
    (
        &[
            "cm",
            "centimeter",
            "centimeters",
            "centimetre",
            "centimetres",
        ],
        unit(Length, 0.01, "centimetre", "centimetres"),
    ),
    (
        &["m", "meter", "meters", "metre", "metres"],
        unit(Length, 1.0, "metre", "metres"),
    ),
    (
        &[
            "km",
            "kilometer",
            "kilometers",
            "kilometre",
            "kilometres",
            "kms",
        ],
        unit(Length, 1000.0, "kilometre", "kilometres"),
    ),
    (
        &["inch", "inches", "in"],
        unit(Length, 0.0254, "inch", "inches"),
    ),
    (
        &["ft", "foot", "feet"],
        unit(Length, 0.3048, "foot", "feet"),
    ),
    (
        &["yd", "yard", "yards", "yds"],
        unit(Length, 0.9144, "yard", "yards"),
    ),
    (
        &["mi", "mile", "miles"],
        unit(Length, 1609.344, "mile", "miles"),
    ),
    (
        &["mg", "milligram", "milligrams"],
        unit(Mass, 0.001, "milligram", "milligrams"),
    ),
    (
        &["g", "gram", "grams", "gramme", "grammes"],
        unit(Mass, 1.0, "gram", "grams"),
    ),
    (
        &["kg", "kilogram", "kilograms", "kilo", "kilos", "kgs"],
        unit(Mass, 1000.0, "kilogram", "kilograms"),
    ),
    (
        &["tonne", "tonnes"],
        unit(Mass, 1_000_000.0, "tonne", "tonnes"),
    ),
    (
        &["oz", "ounce", "ounces"],
        unit(Mass, 28.349_523_125, "ounce", "ounces"),
    ),
    (
        &["lb", "lbs", "pound", "pounds"],
        unit(Mass, 453.592_37, "pound", "pounds"),
    ),
    (
        &["stone", "stones"],
        unit(Mass, 6_350.293_18, "stone", "stone"),
    ),
    (
        &[
            "ml",
            "milliliter",
            "milliliters",
            "millilitre",
            "millilitres",
        ],
        unit(Volume, 1.0, "millilitre", "millilitres"),
    ),
    (
        &[
            "cl",
            "centiliter",
            "centiliters",
            "centilitre",
            "centilitres",
        ],
        unit(Volume, 10.0, "centilitre", "centilitres"),
    ),
    (
        &["l", "liter", "liters", "litre", "litres"],
        unit(Volume, 1000.0, "litre", "litres"),
    ),
    (
        &["tsp", "teaspoon", "teaspoons"],
        unit(Volume, 4.928_921_593_75, "teaspoon", "teaspoons"),
    ),
    (
        &["tbsp", "tablespoon", "tablespoons"],
        unit(Volume, 14.786_764_781_25, "tablespoon", "tablespoons"),
    ),
    (
        &["floz", "fluidounce"],
        unit(
            Volume,
            29.573_529_562_5,
            "US fluid ounce",
            "US fluid ounces",
        ),
    ),
    (
        &["cup", "cups"],
        unit(Volume, 236.588_236_5, "US cup", "US cups"),
    ),
    (
        &["pint", "pints", "pt"],
        unit(Volume, 473.176_473, "US pint", "US pints"),
    ),
    (
        &["quart", "quarts", "qt"],
        unit(Volume, 946.352_946, "US quart", "US quarts"),
    ),
    (
        &["gallon", "gallons", "gal"],
        unit(Volume, 3_785.411_784, "US gallon", "US gallons"),
    ),
    (
        &["second", "seconds", "sec", "secs"],
        unit(Time, 1.0, "second", "seconds"),
    ),
    (
        &["minute", "minutes", "min", "mins"],
        unit(Time, 60.0, "minute", "minutes"),
    ),
    (
        &["hour", "hours", "hr", "hrs"],
        unit(Time, 3600.0, "hour", "hours"),
    ),
    (&["day", "days"], unit(Time, 86_400.0, "day", "days")),
    (&["week", "weeks"], unit(Time, 604_800.0, "week", "weeks")),
    (
        &["celsius", "centigrade", "c"],
        unit(Temperature, 0.0, "°C", "°C"),
    ),
    (&["fahrenheit", "f"], unit(Temperature, 1.0, "°F", "°F")),
    (
        &["kelvin", "kelvins", "k"],
        unit(Temperature, 2.0, "K", "K"),
    ),
];

fn lookup(word: &str) -> Option<Unit> {
    UNITS
        .iter()
        .find(|(names, _)| names.contains(&word))
        .map(|(_, u)| *u)
}

const NUMBER: &str = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+|a hundred|a thousand|one hundred|one thousand|a dozen|half an?|an?|one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|fifty|hundred|thousand";

static HOW_MANY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"\b(?:how many|what amount of|how much|number of)\s+([a-z]+)\s+(?:(?:are|is|would be|will|fit|there)\s+)*(?:in|to make|make|makes|equal|equals|is|are|per)\s+(?:up\s+)?(?:({NUMBER})\s*)?([a-z]+)\b"
    ))
    .unwrap()
});

static N_TO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:^|[^\w.])(-?(?:{NUMBER}))\s*([a-z]+)\s+(?:to|in|into|as|in to)\s+([a-z]+)\b"
    ))
    .unwrap()
});

fn number(text: &str) -> Option<f64> {
    Some(match text.trim() {
        "a" | "an" | "one" => 1.0,
        "half a" | "half an" => 0.5,
        "two" => 2.0,
        "three" => 3.0,
        "four" => 4.0,
        "five" => 5.0,
        "six" => 6.0,
        "seven" => 7.0,
        "eight" => 8.0,
        "nine" => 9.0,
        "ten" => 10.0,
        "twelve" | "a dozen" => 12.0,
        "twenty" => 20.0,
        "fifty" => 50.0,
        "hundred" | "a hundred" | "one hundred" => 100.0,
        "thousand" | "a thousand" | "one thousand" => 1000.0,
        digits => digits.replace(',', "").parse().ok()?,
    })
}

/// Lowercases and folds multi-word units and degree signs to one word.
fn normalise(text: &str) -> String {
    let mut s = text.to_lowercase().replace('’', "'");
    for (from, to) in [
        ("fluid ounces", "floz"),
        ("fluid ounce", "floz"),
        ("fl oz", "floz"),
        ("fl. oz", "floz"),
        ("metric tons", "tonnes"),
        ("metric ton", "tonne"),
        ("degrees ", ""),
        ("degree ", ""),
        ("°", ""),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// The answer to a unit-conversion question, e.g. "5 feet = 60 inches.",
/// or `None` when the message does not parse or mixes dimensions.
pub fn convert(text: &str) -> Option<String> {
    let text = normalise(text);
    let (value, from, to) = if let Some(c) = HOW_MANY.captures(&text) {
        let value = c.get(2).map_or(Some(1.0), |n| number(n.as_str()))?;
        (value, lookup(&c[3])?, lookup(&c[1])?)
    } else if let Some(c) = N_TO.captures(&text) {
        (number(&c[1])?, lookup(&c[2])?, lookup(&c[3])?)
    } else {
        return None;
    };
    if from.dimension != to.dimension || !value.is_finite() {
        return None;
    }
    let result = if from.dimension == Temperature {
        let kelvin = match from.factor as u8 {
            0 => value + 273.15,
            1 => (value - 32.0) * 5.0 / 9.0 + 273.15,
            _ => value,
        };
        match to.factor as u8 {
            0 => kelvin - 273.15,
            1 => (kelvin - 273.15) * 9.0 / 5.0 + 32.0,
            _ => kelvin,
        }
    } else {
        value * from.factor / to.factor
    };
    if !result.is_finite() {
        return None;
    }
    let name = |u: Unit, v: f64| if v == 1.0 { u.one } else { u.many };
    let sep = |u: Unit| if u.dimension == Temperature { "" } else { " " };
    let (a, b) = (format_number(value), format_number(result));
    Some(format!(
        "{a}{}{} = {b}{}{}.",
        sep(from),
        name(from, value),
        sep(to),
        name(to, result)
    ))
}

/// A number with about four significant digits, without trailing zeros.
pub fn format_number(v: f64) -> String {
    if v.abs() < 1e-9 {
        return "0".into();
    }
    if v.abs() >= 1e15 || v.abs() < 1e-6 {
        return format!("{v:.4e}");
    }
    if v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 8) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

static CALC_LEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(?:please|can you|could you|will you|would you|tell me|let me know|i need to know|i want to know|what is|what's|whats|what are|calculate|compute|work out|solve|evaluate|how much is|how much are|do the math on|the answer to|the result of|the sum of|the value of|for me|what)[\s,]*)+").unwrap()
});
static CALC_TAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:[\s,]+(?:equals?|is|makes?|please|for me)|\s*[?=.])+\s*$").unwrap()
});
static ADD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:add|sum|sum up|total)\s+(-?[\d.,]+)\s+(?:and|plus|to|\+)\s+(-?[\d.,]+)$")
        .unwrap()
});
static SUBTRACT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:subtract|take away|take)\s+(-?[\d.,]+)\s+from\s+(-?[\d.,]+)$").unwrap()
});
static PERCENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(-?[\d.,]+)\s*(?:%|percent)\s+(of|off|off of)\s+(-?[\d.,]+)$").unwrap()
});
static SQRT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:the\s+)?(?:square root of|sqrt of|sqrt)\s*\(?\s*([\d.,]+)\s*\)?$").unwrap()
});
static FACTORIAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d{1,2})\s*(?:!|factorial)$").unwrap());

/// The answer to a simple arithmetic question ("what is 7 x 7", "add 456
/// and 781", "30% off 279", "square root of 2", "8 factorial",
/// "(2 + 3) * 4"), or `None` when the message is not plain arithmetic.
pub fn calculate(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let trimmed = CALC_LEAD.replace(lower.trim(), "");
    let body = CALC_TAIL.replace(trimmed.trim(), "");
    let body = body.trim();
    let num = |s: &str| s.replace(',', "").parse::<f64>().ok();
    let (shown, value) = if let Some(c) = ADD.captures(body) {
        let (a, b) = (num(&c[1])?, num(&c[2])?);
        (
            format!("{} + {}", format_number(a), format_number(b)),
            a + b,
        )
    } else if let Some(c) = SUBTRACT.captures(body) {
        let (a, b) = (num(&c[1])?, num(&c[2])?);
        (
            format!("{} − {}", format_number(b), format_number(a)),
            b - a,
        )
    } else if let Some(c) = PERCENT.captures(body) {
        let (p, base) = (num(&c[1])?, num(&c[3])?);
        let of = &c[2] == "of";
        let value = if of {
            base * p / 100.0
        } else {
            base * (1.0 - p / 100.0)
        };
        let how = if of { "of" } else { "off" };
        (
            format!("{}% {how} {}", format_number(p), format_number(base)),
            value,
        )
    } else if let Some(c) = SQRT.captures(body) {
        let a = num(&c[1])?;
        (format!("√{}", format_number(a)), a.sqrt())
    } else if let Some(c) = FACTORIAL.captures(body) {
        let n: u32 = c[1].parse().ok()?;
        if n > 20 {
            return None;
        }
        (format!("{n}!"), (1..=n).map(f64::from).product())
    } else {
        let expression = symbolic(body)?;
        let value = Parser::new(&expression).parse()?;
        (expression, value)
    };
    value
        .is_finite()
        .then(|| format!("{shown} = {}", format_number(value)))
}

/// Word operators to symbols; `None` if anything but numbers, operators and
/// parentheses is left.
fn symbolic(body: &str) -> Option<String> {
    let mut s = format!(" {body} ");
    for (from, to) in [
        (" multiplied by ", " * "),
        (" divided by ", " / "),
        (" to the power of ", " ^ "),
        (" plus ", " + "),
        (" minus ", " - "),
        (" times ", " * "),
        (" over ", " / "),
        (" x ", " * "),
        ("×", "*"),
        ("÷", "/"),
        (" squared ", " ^ 2 "),
        (" cubed ", " ^ 3 "),
        (" and ", " + "),
    ] {
        s = s.replace(from, to);
    }
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let ok = s
        .chars()
        .all(|c| c.is_ascii_digit() || " .,+-*/^()".contains(c));
    let operators = s.chars().filter(|c| "+-*/^".contains(*c)).count();
    (ok && operators > 0 && s.chars().any(|c| c.is_ascii_digit())).then_some(s.replace(',', ""))
}

/// Recursive-descent evaluation of `+ - * / ^` with parentheses and unary
/// minus; at most 64 levels of nesting.
struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: u32,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            bytes: text.as_bytes(),
            at: 0,
            depth: 0,
        }
    }

    fn parse(mut self) -> Option<f64> {
        let value = self.sum()?;
        self.skip();
        (self.at == self.bytes.len()).then_some(value)
    }

    fn skip(&mut self) {
        while self.bytes.get(self.at) == Some(&b' ') {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn sum(&mut self) -> Option<f64> {
        let mut value = self.product()?;
        loop {
            if self.eat(b'+') {
                value += self.product()?;
            } else if self.eat(b'-') {
                value -= self.product()?;
            } else {
                return Some(value);
            }
        }
    }

    fn product(&mut self) -> Option<f64> {
        let mut value = self.power()?;
        loop {
            if self.eat(b'*') {
                value *= self.power()?;
            } else if self.eat(b'/') {
                value /= self.power()?;
            } else {
                return Some(value);
            }
        }
    }

    fn power(&mut self) -> Option<f64> {
        let base = self.unary()?;
        if self.eat(b'^') {
            let exponent = self.power()?;
            return Some(base.powf(exponent));
        }
        Some(base)
    }

    fn unary(&mut self) -> Option<f64> {
        if self.eat(b'-') {
            return self.nested(|p| p.unary()).map(|v| -v);
        }
        self.atom()
    }

    fn nested(&mut self, f: impl FnOnce(&mut Self) -> Option<f64>) -> Option<f64> {
        self.depth += 1;
        if self.depth > 64 {
            return None;
        }
        let value = f(self);
        self.depth -= 1;
        value
    }

    fn atom(&mut self) -> Option<f64> {
        if self.eat(b'(') {
            let value = self.nested(|p| p.sum())?;
            return self.eat(b')').then_some(value);
        }
        self.skip();
        let start = self.at;
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
        {
            self.at += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.at])
            .ok()?
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_many_x_in_n_y_is_converted() {
        assert_eq!(
            convert("how many centimeters are in an inch").as_deref(),
            Some("1 inch = 2.54 centimetres.")
        );
        assert_eq!(
            convert("what amount of millimeters are in 50 kilometers").as_deref(),
            Some("50 kilometres = 50000000 millimetres.")
        );
        assert_eq!(
            convert("how many ounces in a pound?").as_deref(),
            Some("1 pound = 16 ounces.")
        );
        assert_eq!(
            convert("whats 5 feet in inches").as_deref(),
            Some("5 feet = 60 inches.")
        );
        assert_eq!(
            convert("convert 10 km to miles").as_deref(),
            Some("10 kilometres = 6.214 miles.")
        );
        assert_eq!(
            convert("what's 32 degrees fahrenheit in celsius").as_deref(),
            Some("32°F = 0°C.")
        );
        assert_eq!(
            convert("how many seconds are in a day").as_deref(),
            Some("1 day = 86400 seconds.")
        );
    }

    #[test]
    fn unknown_units_and_mixed_dimensions_are_not_guessed() {
        assert_eq!(convert("how many crows are in 10 murders"), None);
        assert_eq!(convert("what's 32 fahrenheit in celsisus"), None);
        assert_eq!(convert("convert 5 kg to miles"), None);
        assert_eq!(convert("how do i convert my car to electric"), None);
    }

    #[test]
    fn simple_arithmetic_is_calculated() {
        assert_eq!(calculate("what is 7 x 7").as_deref(), Some("7 * 7 = 49"));
        assert_eq!(
            calculate("please add 456 and 781 for me").as_deref(),
            Some("456 + 781 = 1237")
        );
        assert_eq!(
            calculate("can you tell me what 30% off 279 is").as_deref(),
            Some("30% off 279 = 195.3")
        );
        assert_eq!(
            calculate("what is 8 factorial").as_deref(),
            Some("8! = 40320")
        );
        assert_eq!(
            calculate("what is the sum of 3 plus 5").as_deref(),
            Some("3 + 5 = 8")
        );
        assert_eq!(
            calculate("(2 + 3) * -4?").as_deref(),
            Some("(2 + 3) * -4 = -20")
        );
        assert_eq!(calculate("what is 1 / 0"), None);
    }

    #[test]
    fn words_that_are_not_arithmetic_are_not_calculated() {
        assert_eq!(calculate("what is the meaning of 42"), None);
        assert_eq!(calculate("calculate my taxes for 2024"), None);
        assert_eq!(calculate("((((((("), None);
        assert_eq!(calculate(&"(".repeat(500)), None);
    }
}
