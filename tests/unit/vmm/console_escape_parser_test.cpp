// The escape-sequence state machine alone: bytes in, forwarded bytes and
// actions out.
#include "vmm/console/escape_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace tapvm::console {
namespace {

using Actions = std::vector<ConsoleAction>;

std::vector<uint8_t> b(const std::string& s) { return {s.begin(), s.end()}; }
std::string str(const std::vector<uint8_t>& v) { return {v.begin(), v.end()}; }

TEST(EscapeParserTest, OrdinaryBytesPassThroughUnchanged) {
    EscapeParser parser;
    std::vector<uint8_t> all;
    for (int i = 0; i < 256; ++i)
        if (i != EscapeParser::kDefaultEscape) all.push_back(static_cast<uint8_t>(i));
    auto r = parser.feed(all);
    EXPECT_EQ(r.forward, all);
    EXPECT_TRUE(r.actions.empty());
    EXPECT_EQ(r.consumed, all.size());
}

TEST(EscapeParserTest, CtrlAXQuitsAndStopsParsing) {
    EscapeParser parser;
    auto r = parser.feed(b("ls\x01xrm -rf"));
    EXPECT_EQ(str(r.forward), "ls");
    EXPECT_EQ(r.actions, Actions{ConsoleAction::kQuit});
    EXPECT_EQ(r.consumed, 4u) << "what follows quit is not for the guest";
}

TEST(EscapeParserTest, DoubledEscapeSendsOneLiteralEscape) {
    EscapeParser parser;
    auto r = parser.feed(b("a\x01\x01z"));
    EXPECT_EQ(str(r.forward), "a\x01z");
    EXPECT_TRUE(r.actions.empty());
    // Four in a row are two literal ones.
    r = parser.feed(b("\x01\x01\x01\x01"));
    EXPECT_EQ(str(r.forward), "\x01\x01");
    EXPECT_FALSE(parser.escape_pending());
}

TEST(EscapeParserTest, HelpIsAnActionAndParsingGoesOn) {
    EscapeParser parser;
    auto r = parser.feed(b("a\x01hb\x01?c"));
    EXPECT_EQ(str(r.forward), "abc");
    EXPECT_EQ(r.actions, (Actions{ConsoleAction::kHelp, ConsoleAction::kHelp}));
    EXPECT_EQ(r.consumed, 7u);
}

TEST(EscapeParserTest, UnknownCommandIsSwallowedWithItsEscape) {
    EscapeParser parser;
    auto r = parser.feed(b("1\x01q2"));
    EXPECT_EQ(str(r.forward), "12");
    EXPECT_TRUE(r.actions.empty());
}

TEST(EscapeParserTest, EscapeAtTheEndOfOneReadWaitsForTheNext) {
    EscapeParser parser;
    auto r = parser.feed(b("abc\x01"));
    EXPECT_EQ(str(r.forward), "abc");
    EXPECT_TRUE(parser.escape_pending());
    r = parser.feed(b("x"));
    EXPECT_EQ(r.actions, Actions{ConsoleAction::kQuit});
    EXPECT_TRUE(r.forward.empty());
}

TEST(EscapeParserTest, ByteByByteEqualsAllAtOnce) {
    const std::string input = "ab\x01\x01" "c\x01hd\x01zef\x01";
    EscapeParser whole;
    auto expected = whole.feed(b(input));
    EscapeParser pieces;
    std::vector<uint8_t> forward;
    Actions actions;
    for (char c : input) {
        auto r = pieces.feed(b(std::string(1, c)));
        forward.insert(forward.end(), r.forward.begin(), r.forward.end());
        actions.insert(actions.end(), r.actions.begin(), r.actions.end());
    }
    EXPECT_EQ(forward, expected.forward);
    EXPECT_EQ(actions, expected.actions);
    EXPECT_EQ(pieces.escape_pending(), whole.escape_pending());
}

TEST(EscapeParserTest, AnotherEscapeCharacterCanBeChosen) {
    EscapeParser parser(0x1d);  // Ctrl-]
    auto r = parser.feed(b("\x01x\x1d" "x"));
    EXPECT_EQ(str(r.forward), "\x01x") << "Ctrl-A is an ordinary byte now";
    EXPECT_EQ(r.actions, Actions{ConsoleAction::kQuit});
    EXPECT_EQ(parser.escape_name(), "Ctrl-]");
}

TEST(EscapeParserTest, HelpTextNamesTheEscape) {
    EscapeParser parser;
    EXPECT_EQ(parser.escape_name(), "Ctrl-A");
    std::string help = parser.help_text();
    EXPECT_NE(help.find("Ctrl-A x"), std::string::npos);
    EXPECT_NE(help.find("Ctrl-A h"), std::string::npos);
    EXPECT_EQ(help.find("\n"), help.find("\r\n") + 1) << "raw-mode friendly line ends";
}

}  // namespace
}  // namespace tapvm::console
